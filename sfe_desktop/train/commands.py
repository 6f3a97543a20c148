"""``sfe-desktop train`` and ``sfe-desktop evaluate``: argparse -> core calls, with progress bars."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub) -> None:
    t = sub.add_parser("train", help="train an SFE model (or the baseline) on a Karpathy JSON or CSV dataset")
    _data_args(t)
    t.add_argument("--train-split", default="train")
    t.add_argument("--val-split", default="val")
    t.add_argument("--out", required=True, help="checkpoint folder to write (best epoch on val)")
    t.add_argument("--epochs", type=int, default=3)
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--lr", type=float, default=5e-4)
    t.add_argument("--backbone-lr", type=float, default=3e-5)
    t.add_argument("--loss", choices=["infonce", "vsepp"], default="infonce")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--image-backbone", default="lite2", choices=["lite0", "lite2", "tiny"])
    t.add_argument("--image-size", type=int, default=None)
    t.add_argument("--image-trainable-blocks", type=int, default=1,
                   help="top EfficientNet blocks fine-tuned, with the head (1, as the bundled model; 0: frozen tower)")
    t.add_argument("--text-trainable-layers", type=int, default=1,
                   help="top MiniLM layers fine-tuned (1, as the bundled model; 0: frozen tower)")
    t.add_argument("--dim", type=int, default=256)
    t.add_argument("--concepts", type=int, default=500)
    for cue in ("patch", "instance", "neighbour", "step2"):
        t.add_argument(f"--no-{cue}", action="store_true", help=f"switch off the {cue} component (ablation)")
    t.add_argument("--baseline", action="store_true", help="plain two-tower baseline (every cue and Step 2 off)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="R@1/5/10 and rSum of a checkpoint on a dataset split")
    _data_args(e)
    e.add_argument("--split", default="test")
    e.add_argument("--checkpoint", default=None, help="checkpoint folder (default: the bundled one)")
    e.add_argument("--rerank-k", type=int, default=None, help="Step-1 candidates re-ranked by Step 2")
    e.add_argument("--json", default=None, help="write {step1: {...}, rerank: {...}} here")
    e.set_defaults(func=cmd_evaluate)


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="Karpathy-style JSON or image,caption CSV")
    p.add_argument("--images", default=None, help="images folder (default: 'images' beside the dataset file)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--cache-dir", default=None, help="frozen-feature cache (default: the app's data dir)")
    p.add_argument("--no-cache", action="store_true", help="do not cache backbone features on disk")


def _cache(args) -> Path | None:
    from ..settings import data_dir

    if args.no_cache:
        return None
    return Path(args.cache_dir) if args.cache_dir else data_dir() / "cache" / "features"


class _Bars:
    """One tqdm bar per named phase, on stderr."""

    def __init__(self):
        from tqdm import tqdm

        self._tqdm, self._bars = tqdm, {}

    def __call__(self, name: str, done: int, total: int, loss: float | None = None) -> None:
        bar = self._bars.get(name)
        if bar is None:
            bar = self._bars[name] = self._tqdm(total=total, desc=name, leave=False, file=sys.stderr, mininterval=1)
        bar.update(done - bar.n)
        if loss is not None:
            bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
        if done >= total:
            bar.close()
            del self._bars[name]


def cmd_train(args) -> int:
    import torch

    from ..settings import pick_device
    from ..data.datasets import load_dataset
    from ..model.backbones import IMAGE_BACKBONES
    from ..model.config import ModelConfig
    from .loop import TrainConfig, Trainer

    torch.set_num_threads(max(1, torch.get_num_threads()))
    device = pick_device(args.device)
    train = load_dataset(args.dataset, args.images, args.train_split)
    val = load_dataset(args.dataset, args.images, args.val_split)
    size = args.image_size or (IMAGE_BACKBONES[args.image_backbone][3] if args.image_backbone != "tiny" else 64)
    base = ModelConfig.tiny() if args.image_backbone == "tiny" else ModelConfig()
    off = args.baseline
    cfg = base.replace(image_backbone=args.image_backbone, image_size=size,
                       image_trainable_blocks=args.image_trainable_blocks,
                       text_trainable_layers=args.text_trainable_layers, dim=args.dim, n_concepts=args.concepts,
                       use_patch=not (off or args.no_patch), use_instance=not (off or args.no_instance),
                       use_neighbour=not (off or args.no_neighbour), use_step2=not (off or args.no_step2))
    tcfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, backbone_lr=args.backbone_lr,
                       loss=args.loss, seed=args.seed)
    bars = _Bars()
    print(f"training on {len(train.images)} images / {len(train.captions)} captions, "
          f"validating on {len(val.images)} / {len(val.captions)}, device {device}", file=sys.stderr)
    trainer = Trainer(cfg, train, val, tcfg, device, _cache(args), Path(args.out),
                      log_fn=lambda s: print(s, file=sys.stderr, flush=True))
    result = trainer.fit(progress_factory=lambda ep: (lambda d, n, loss: bars(f"epoch {ep}", d, n, loss)),
                         meta={"command": " ".join(sys.argv[1:])})
    (Path(args.out) / "train_log.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(f"best epoch {result['best_epoch']}: val rSum {result['best_rsum']:.1f}; checkpoint in {args.out}")
    return 0


def cmd_evaluate(args) -> int:
    from ..data.datasets import load_dataset
    from ..model.runtime import SFERuntime
    from .evaluate import evaluate_dataset, write_json
    from .metrics import format_metrics

    ds = load_dataset(args.dataset, args.images, args.split)
    rt = SFERuntime.load(args.checkpoint, args.device)
    result = evaluate_dataset(rt.model, ds, _cache(args), args.rerank_k, progress=_Bars())
    print(f"{ds.name}: {result['images']} images, {result['captions']} captions, {result['seconds']} s")
    print(f"step1   {format_metrics(result['step1'])}")
    print(f"rerank  {format_metrics(result['rerank'])}")
    if args.json:
        write_json({"step1": result["step1"], "rerank": result["rerank"]}, args.json)
    return 0
