"""Give a checkpoint trained without a label bridge one: the pretrained ImageNet classifier and the sentence
model's class prompts (nothing trained), then the fusion and the match confidence calibrated on a validation
split. The trained weights and the memory bank are copied unchanged. A checkpoint that has a bridge has its class
prompts embedded again and is calibrated again (after a change of the bridge or calibration code; ``--center``:
its bridge centred from then on). Usage:

    python scripts/add_bridge.py --checkpoint resources/sfe-default --out runs/with-bridge \
        --dataset ../shared/data/flickr8k/dataset_flickr8k.json --split val [--cache-dir CACHE]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from sfe_desktop.data.datasets import load_dataset
from sfe_desktop.model.build import init_bridge
from sfe_desktop.model.calibrate import calibrate
from sfe_desktop.model.checkpoint import CORPUS_BUFFERS, load_checkpoint, save_checkpoint
from sfe_desktop.model.features import encode_dataset, encode_texts
from sfe_desktop.model.sfe import SFEModel
from sfe_desktop.train.evaluate import dataset_lower


def with_bridge(model: SFEModel, bridge_dim: int) -> SFEModel:
    """A copy of ``model`` (same weights and memory bank) with an initialised label bridge of ``bridge_dim``."""
    out = SFEModel(model.cfg.replace(bridge_dim=bridge_dim), pretrained=True).to(model.device).eval()
    for name in CORPUS_BUFFERS:
        setattr(out, name, torch.empty_like(getattr(model, name)))
    missing, unexpected = out.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(not k.startswith("bridge.") for k in missing):
        raise SystemExit(f"the checkpoint does not fit: unexpected {unexpected[:3]}, missing {missing[:3]}")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--images", default=None)
    p.add_argument("--split", default="val")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--bridge-dim", type=int, default=192)
    p.add_argument("--center", action="store_true", help="measure the bridge from its prompts' mean (an older "
                   "checkpoint's bridge was not); the fusion and confidence are fitted again for it")
    a = p.parse_args()
    torch.set_grad_enabled(False)
    model, meta, corpus = load_checkpoint(a.checkpoint)
    if a.center and model.cfg.bridge_dim:
        model.cfg = model.cfg.replace(bridge_centered=True)
        model.bridge.centered = True
    if not model.cfg.bridge_dim:
        model = with_bridge(model.eval(), a.bridge_dim)
        meta["classes"] = init_bridge(model)
        meta.setdefault("training", {})["bridge"] = {"added_by": "scripts/add_bridge.py", "bridge_dim": a.bridge_dim}
        meta.pop("metrics", None)  # the fused model's recall is not the old one's: run `sfe-desktop evaluate`
    else:  # its prompts again, as inference computes them (training once embedded them with dropout on)
        meta["classes"] = init_bridge(model.eval(), meta.get("classes"))
        meta.setdefault("training", {})["bridge_prompts"] = "recomputed by scripts/add_bridge.py"
    model.eval()
    ds = load_dataset(a.dataset, a.images, a.split)
    img, txt = dataset_lower(model, ds, Path(a.cache_dir) if a.cache_dir else None)
    images, texts = encode_dataset(model, img, txt)
    meta["calibration"] = calibrate(model, images, texts, ds.caption_image, lambda t: encode_texts(model, t))
    meta["calibration"]["calibrated_on"] = ds.name
    save_checkpoint(model, a.out, meta, corpus)
    print(json.dumps({"out": a.out, "fusion": model.fusion.to_dict(), "confidence": model.confidence.to_dict(),
                      **meta["calibration"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
