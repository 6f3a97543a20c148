"""Train the baseline, the full SFE model and one model without each Step-1 cue on the same frozen
features, and print a table of val recall (Step 1 and re-ranked). Usage:

    python scripts/ablation.py --dataset ../shared/data/flickr8k/dataset_flickr8k.json \
        --cache-dir CACHE --out runs/ablation --epochs 3 [--text-trainable-layers 0]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from sfe_desktop.settings import pick_device
from sfe_desktop.data.datasets import load_dataset
from sfe_desktop.model.config import ModelConfig
from sfe_desktop.train.loop import TrainConfig, Trainer
from sfe_desktop.model.metrics import format_metrics

VARIANTS = {
    "baseline": dict(use_patch=False, use_instance=False, use_neighbour=False, use_step2=False),
    "sfe": {},
    "no-patch": dict(use_patch=False),
    "no-instance": dict(use_instance=False),
    "no-neighbour": dict(use_neighbour=False),
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dataset", required=True)
    p.add_argument("--images", default=None)
    p.add_argument("--cache-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--text-trainable-layers", type=int, default=0)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    dev = pick_device(args.device)
    train = load_dataset(args.dataset, args.images, "train")
    val = load_dataset(args.dataset, args.images, "val")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "ablation.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    features = None
    for name in args.variants.split(","):
        if name in results:
            continue
        cfg = ModelConfig(image_trainable_blocks=0, text_trainable_layers=args.text_trainable_layers,
                          **VARIANTS[name])
        trainer = Trainer(cfg, train, val, TrainConfig(epochs=args.epochs, patience=2), dev, Path(args.cache_dir),
                          out / name, log_fn=lambda s, n=name: print(f"[{n}] {s}", flush=True), features=features)
        features = (trainer.img_tr, trainer.txt_tr, trainer.img_va, trainer.txt_va)
        r = trainer.fit()
        best = r["history"][r["best_epoch"] - 1]
        results[name] = {"best_epoch": r["best_epoch"], "step1": best["val_step1"], "rerank": best["val_rerank"]}
        results_path.write_text(json.dumps(results, indent=1))
        del trainer
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
    for name, r in results.items():
        print(f"{name:13s} step1  {format_metrics(r['step1'])}")
        print(f"{'':13s} rerank {format_metrics(r['rerank'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
