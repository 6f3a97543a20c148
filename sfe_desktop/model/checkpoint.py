"""Checkpoints: a directory with ``config.json`` (architecture, vocabulary, corpus texts, training
record) and ``model.safetensors`` (tensors). Loading never unpickles anything.

Only what the backbone packages cannot restore is saved: the fine-tuned top of each tower, the heads,
the cues, the re-ranker and the corpus buffers (float16)."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from ..errors import CheckpointError
from .config import CHECKPOINT_VERSION, ModelConfig
from .sfe import CORPUS_BUFFERS, SFEModel

FORMAT = "sfe-desktop-checkpoint"
HALF_KEYS = {"mem_img", "mem_txt", "proto_img", "proto_txt"}


def _saved_keys(model: SFEModel) -> list[str]:
    keys = []
    for k in model.state_dict():
        if k.startswith("image.") and model.cfg.image_backbone != "tiny":
            if not any(k.startswith("image." + p) for p in model.image.upper_state_prefixes()):
                continue
            if model.cfg.image_trainable_blocks == 0:
                continue
        if k.startswith("text.") and model.cfg.text_backbone != "tiny":
            if not any(k.startswith("text." + p) for p in model.text.upper_state_prefixes()):
                continue
            if model.cfg.text_trainable_layers == 0:
                continue
        keys.append(k)
    return keys


def save_checkpoint(model: SFEModel, directory: str | Path, meta: dict) -> Path:
    """Write ``directory/config.json`` and ``directory/model.safetensors`` (atomically, by rename)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    tensors = {}
    for k in _saved_keys(model):
        t = state[k].detach().cpu()
        if k in HALF_KEYS:
            t = t.half()
        tensors[k] = t.contiguous()
    config = {"format": FORMAT, "version": CHECKPOINT_VERSION, "model": model.cfg.to_dict(), **meta}
    tmp_w, tmp_c = directory / "model.safetensors.part", directory / "config.json.part"
    save_file(tensors, str(tmp_w))
    tmp_c.write_text(json.dumps(config, indent=1), encoding="utf-8")
    os.replace(tmp_w, directory / "model.safetensors")
    os.replace(tmp_c, directory / "config.json")
    return directory


def checkpoint_id(directory: str | Path) -> str:
    h = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        with open(Path(directory) / name, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def read_config(directory: str | Path) -> dict:
    directory = Path(directory)
    if not directory.exists():
        raise CheckpointError(f"checkpoint not found: {directory}")
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: a checkpoint is a folder with config.json and model.safetensors")
    path = directory / "config.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path}: missing") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON (truncated or corrupt)") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an SFE Explorer checkpoint")
    if meta.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {meta.get('version')} is not supported (this build reads {CHECKPOINT_VERSION})")
    return meta


def load_checkpoint(directory: str | Path, device: torch.device | str = "cpu") -> tuple[SFEModel, dict]:
    """Build the model from ``config.json`` and load ``model.safetensors`` strictly.

    Raises
    ------
    CheckpointError
        One line naming the file and the problem.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    meta = read_config(directory)
    try:
        cfg = ModelConfig.from_dict(meta["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{directory / 'config.json'}: bad model section ({exc})") from exc
    wpath = directory / "model.safetensors"
    if not wpath.is_file():
        raise CheckpointError(f"{wpath}: missing")
    try:
        tensors = load_file(str(wpath), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{wpath}: not a valid safetensors file (truncated, corrupt or pickled)") from exc
    model = SFEModel(cfg, pretrained=True)
    expected = set(_saved_keys(model))
    missing, unexpected = expected - set(tensors), set(tensors) - expected
    if missing or unexpected:
        what = sorted(missing)[:3] if missing else sorted(unexpected)[:3]
        kind = "missing" if missing else "unexpected"
        raise CheckpointError(f"{wpath}: does not match its config ({kind} tensors: {', '.join(what)})")
    for name in CORPUS_BUFFERS:
        setattr(model, name, torch.empty_like(tensors[name], dtype=getattr(model, name).dtype))
    state = model.state_dict()
    for k, t in tensors.items():
        if state[k].shape != t.shape:
            raise CheckpointError(f"{wpath}: tensor {k} has shape {tuple(t.shape)}, expected {tuple(state[k].shape)}")
        state[k] = t.to(state[k].dtype)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), meta
