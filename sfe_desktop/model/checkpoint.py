"""Checkpoints: a folder of three files, written by :func:`save_checkpoint`. Loading never unpickles anything.

* ``config.json``: format and layout version, the model's architecture (``"model"``: :class:`ModelConfig`), the
  concept vocabulary, the training record and metrics;
* ``corpus.json``: the training captions, the photo of each caption and the photo names (:class:`Corpus`);
* ``model.safetensors``: the tensors. Only what the backbone packages cannot restore is saved: the fine-tuned
  top of each tower, the heads, the cues, the re-ranker and the corpus buffers (float16).

Layout versions: 1 kept the corpus inside ``config.json``; 2 (written now) gives it its own file. Older layouts
are read through :data:`MIGRATIONS`, one step per version; :func:`upgrade_checkpoint` rewrites a folder in the
current layout. The checkpoint id (what an index records) hashes every file of the folder's layout.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch

from ..data import strict_json
from ..data.files import MB, regular_stat
from ..data.schema import Text, check_object, shown
from ..errors import CheckpointError
from .config import ModelConfig
from .corpus import Corpus
from .fusion import Confidence, Fusion
from .layout import CONFIG_FILE, CORPUS_FILE, WEIGHTS_FILE, checkpoint_id  # noqa: F401 (checkpoint_id re-exported)
from .sfe import CORPUS_BUFFERS, SFEModel

FORMAT = "sfe-desktop-checkpoint"
FORMAT_VERSION = 2
# Tensors that later versions added with an initial value that leaves an older model's behaviour unchanged
# (the re-ranker's word weights start uniform): an older checkpoint without them loads with that value.
ADDED_LATER = ("reranker.word_score.",)
HALF_KEYS = {"mem_img", "mem_txt", "proto_img", "proto_txt", "bridge.prompts"}


def stored_half(key: str, cfg) -> bool:
    """Whether ``key`` is saved as float16: the corpus buffers and prompts, and the fine-tuned top layers of the
    pretrained backbones (what keeps a checkpoint with two fine-tuned MiniLM layers under 45 MB; a test tower is
    saved whole in float32)."""
    if key in HALF_KEYS:
        return True
    return ((key.startswith("image.") and cfg.image_backbone != "tiny")
            or (key.startswith("text.") and cfg.text_backbone != "tiny"))
# the most a checkpoint's JSON files may hold (a corpus of COCO's 600,000 captions is about 40 MB)
MAX_BYTES = {CONFIG_FILE: 64 * MB, CORPUS_FILE: 512 * MB}
MAX_CONCEPT_CHARS = 200
MAX_CLASSES = 100_000


def _saved_keys(model: SFEModel) -> list[str]:
    keys = []
    for k in model.state_dict():
        # the bridge's frozen pretrained tops come from the backbone packages (saved only for the tiny test towers)
        if k.startswith(("bridge.image_top.", "bridge.classifier.")) and model.cfg.image_backbone != "tiny":
            continue
        if k.startswith("bridge.text_top.") and model.cfg.text_backbone != "tiny":
            continue
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


def _write_json(path: Path, data: dict, indent: int | None) -> Path:
    """Write ``path.part`` (to be renamed over ``path`` by the caller); returns it."""
    part = path.with_name(path.name + ".part")
    part.write_text(strict_json.dumps(data, indent=indent), encoding="utf-8")
    return part


def save_checkpoint(model: SFEModel, directory: str | Path, meta: dict, corpus: Corpus) -> Path:
    """Write the three files of ``directory`` (each atomically, by rename; ``config.json`` last). ``meta``: the
    JSON to keep beside the architecture (concepts, training record, metrics)."""
    from safetensors.torch import save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    tensors = {}
    for k in _saved_keys(model):
        t = state[k].detach().cpu()
        if stored_half(k, model.cfg):
            t = t.half()
        tensors[k] = t.contiguous()
    config = {**meta, "format": FORMAT, "version": FORMAT_VERSION, "model": model.cfg.to_dict()}
    if model.fusion is not None:
        config["fusion"] = model.fusion.to_dict()
    if model.confidence is not None:
        config["confidence"] = model.confidence.to_dict()
    weights = directory / (WEIGHTS_FILE + ".part")
    weights.write_bytes(save(tensors))  # not save_file: it makes the file 0600 whatever the umask says
    parts = [(weights, directory / WEIGHTS_FILE),
             (_write_json(directory / CORPUS_FILE, corpus.to_dict(), None), directory / CORPUS_FILE),
             (_write_json(directory / CONFIG_FILE, config, 1), directory / CONFIG_FILE)]
    for part, target in parts:
        os.replace(part, target)
    return directory


def _read_json(path: Path, what: str) -> dict:
    """A checkpoint's JSON file: a regular file of bounded size holding one strict-JSON object."""
    try:
        data = strict_json.load_file(path, MAX_BYTES.get(path.name, 64 * MB))
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path}: missing") from exc
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: not {what}")
    return data


def _check_corpus(data: dict, path: Path) -> Corpus:
    """The corpus of ``corpus.json`` (or of a layout-1 ``config.json``), its types and indices checked."""
    captions, owner, images = (data.get(k, []) for k in Corpus.KEYS)
    problem = None
    if not (isinstance(captions, list) and all(isinstance(c, str) for c in captions)):
        problem = "'captions' must be a list of texts"
    elif not (isinstance(images, list) and all(isinstance(i, str) for i in images)):
        problem = "'images' must be a list of texts"
    elif not (isinstance(owner, list) and len(owner) == len(captions)):
        problem = "'caption_image' must hold one photo number per caption"
    elif not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(images) for i in owner):
        problem = f"'caption_image' must hold photo numbers from 0 to {len(images) - 1}"
    if problem:
        raise CheckpointError(f"{path}: bad corpus ({problem})")
    return Corpus(captions, owner, images)


def _check_config(meta: dict, path: Path) -> ModelConfig:
    """The model section and the concept names of ``config.json``, checked against their bounds."""
    if not isinstance(meta.get("model"), dict):
        raise CheckpointError(f"{path}: no 'model' section (an object describing the architecture)")
    try:
        cfg = ModelConfig.from_dict(meta["model"])
        concepts = meta.get("concepts", [])
        if not isinstance(concepts, list) or len(concepts) > cfg.n_concepts:
            raise ValueError(f"concepts: must be a list of at most model.n_concepts ({cfg.n_concepts}) names "
                             f"(got {shown(concepts)})")
        check_object(dict(enumerate(concepts)), dict.fromkeys(range(len(concepts)), Text(MAX_CONCEPT_CHARS)),
                     "concepts")
        classes = meta.get("classes", [])  # the label bridge's class names (ImageNet's 1,000)
        if not isinstance(classes, list) or len(classes) > MAX_CLASSES:
            raise ValueError(f"classes: must be a list of at most {MAX_CLASSES} names (got {shown(classes)})")
        check_object(dict(enumerate(classes)), dict.fromkeys(range(len(classes)), Text(MAX_CONCEPT_CHARS)), "classes")
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    return cfg


def _corpus_from_v1(meta: dict) -> tuple[dict, dict]:
    """Layout 1 -> 2: the corpus leaves ``config.json`` for ``corpus.json``."""
    corpus = {k: meta.pop(k) for k in Corpus.KEYS if k in meta}
    return {**meta, "version": 2}, corpus


# layout version -> step to the next one: (config data) -> (config data, corpus data when the step moved it)
MIGRATIONS: dict[int, Callable[[dict], tuple[dict, dict]]] = {1: _corpus_from_v1}


def read_checkpoint(directory: str | Path) -> tuple[dict, Corpus]:
    """``config.json`` (in the current layout, migrated in memory when older) and the corpus of a checkpoint."""
    directory = Path(directory)
    if not directory.exists():
        raise CheckpointError(f"checkpoint not found: {directory}")
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: a checkpoint is a folder with {CONFIG_FILE} and {WEIGHTS_FILE}")
    path = directory / CONFIG_FILE
    meta = _read_json(path, "an SFE Explorer checkpoint")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an SFE Explorer checkpoint")
    version = meta.get("version")
    readable = sorted([*MIGRATIONS, FORMAT_VERSION])
    if isinstance(version, bool) or not isinstance(version, int) or version not in readable:
        raise CheckpointError(f"{path}: checkpoint layout version {shown(version)} is not supported (this build "
                              f"reads versions {readable[0]} to {readable[-1]})")
    corpus, corpus_path = None, path
    while meta["version"] != FORMAT_VERSION:
        meta, corpus = MIGRATIONS[meta["version"]](dict(meta))
    if corpus is None:
        corpus_path = directory / CORPUS_FILE
        corpus = _read_json(corpus_path, "a caption corpus")
    return meta, _check_corpus(corpus, corpus_path)


def upgrade_checkpoint(directory: str | Path) -> bool:
    """Rewrite a checkpoint of an older layout in the current one (tensors untouched); False when it already is.
    Its id changes (its files do)."""
    directory = Path(directory)
    meta, corpus = read_checkpoint(directory)
    if _read_json(directory / CONFIG_FILE, "a checkpoint").get("version") == FORMAT_VERSION:
        return False
    corpus_part = _write_json(directory / CORPUS_FILE, corpus.to_dict(), None)
    config_part = _write_json(directory / CONFIG_FILE, meta, 1)
    os.replace(corpus_part, directory / CORPUS_FILE)  # an old config beside it still reads as the old layout
    os.replace(config_part, directory / CONFIG_FILE)
    return True


def load_checkpoint(directory: str | Path, device: torch.device | str = "cpu") -> tuple[SFEModel, dict, Corpus]:
    """Build the model from ``config.json`` and load ``model.safetensors`` strictly; returns (model, the
    ``config.json`` data, the corpus).

    Raises
    ------
    CheckpointError
        One line naming the file and the problem.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    meta, corpus = read_checkpoint(directory)
    cfg = _check_config(meta, directory / CONFIG_FILE)
    wpath = directory / WEIGHTS_FILE
    try:
        regular_stat(wpath)
    except FileNotFoundError as exc:
        raise CheckpointError(f"{wpath}: missing") from exc
    except OSError as exc:
        raise CheckpointError(f"{wpath}: cannot read ({exc.strerror or exc})") from exc
    try:
        tensors = load_file(str(wpath), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{wpath}: not a valid safetensors file (truncated, corrupt or pickled)") from exc
    for key, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise CheckpointError(f"{wpath}: tensor {key} holds {bad} non-finite values (NaN or infinity): the "
                                  "model diverged in training and cannot be used")
    model = SFEModel(cfg, pretrained=True)
    expected = set(_saved_keys(model))
    for key in expected - set(tensors):  # added after the checkpoint was written: their neutral initial value
        if key.startswith(ADDED_LATER):
            tensors[key] = model.state_dict()[key].clone()
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
    try:
        if cfg.bridge_dim and isinstance(meta.get("fusion"), dict):
            model.fusion = Fusion.from_dict(meta["fusion"])
        if isinstance(meta.get("confidence"), dict):
            model.confidence = Confidence.from_dict(meta["confidence"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{directory / CONFIG_FILE}: bad calibration ({exc})") from exc
    return model.to(device).eval(), meta, corpus
