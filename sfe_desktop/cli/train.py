"""``sfe-desktop train`` and ``sfe-desktop evaluate``: argparse -> core calls, with progress bars.

Every option left out takes its value from the dataclass that owns it (:class:`ModelConfig`,
:class:`TrainConfig`); the help shows those defaults, no number is repeated here.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from ..data import strict_json
from ..data.schema import Float, Int
from ..errors import SFEError
from ..model.config import BOUNDS, ModelConfig
from ..train.evaluate import PATCH_FORMATS
from ..train.loop import TrainConfig
from .common import bounded, show

CUES = ("patch", "instance", "neighbour", "step2")
# the accepted values of the training options (the model's own come from ModelConfig's BOUNDS)
TRAIN_BOUNDS = {"epochs": Int(1, 10_000), "batch_size": Int(8, 65_536), "lr": Float(0, 10, lo_open=True),
                "backbone_lr": Float(0, 10, lo_open=True), "new_lr": Float(0, 10), "seed": Int(0, 2**32 - 1)}


def _default(cls, name: str):
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def _option(p: argparse.ArgumentParser, flag: str, cls, field: str, help_text: str, **kwargs) -> None:
    """An option whose value, when not given, is ``cls``'s default for ``field`` (``None`` here); a numeric one
    accepts what the field's bounds accept (:data:`TRAIN_BOUNDS`, :data:`ModelConfig BOUNDS`)."""
    if kwargs.get("type") in (int, float):
        kwargs["type"] = bounded((TRAIN_BOUNDS if cls is TrainConfig else BOUNDS)[field])
    p.add_argument(flag, dest=field, default=None, help=f"{help_text} (default: {_default(cls, field)})", **kwargs)


def _views(value: str) -> tuple[str, ...]:
    from ..data.features import VIEWS

    views = tuple(v.strip() for v in value.split(",") if v.strip())
    wrong = [v for v in views if v not in VIEWS[1:]]
    if wrong or len(set(views)) != len(views):
        raise argparse.ArgumentTypeError(f"{value!r}: give flip and/or crop, each once, separated by commas")
    return views


def register(sub) -> None:
    t = sub.add_parser("train", help="train an SFE model (or the baseline) on a Karpathy JSON or CSV dataset")
    _data_args(t)
    t.add_argument("--train-split", default="train")
    t.add_argument("--val-split", default="val")
    t.add_argument("--out", required=True, help="checkpoint folder to write (best epoch on val)")
    _option(t, "--epochs", TrainConfig, "epochs", "training epochs", type=int)
    _option(t, "--batch-size", TrainConfig, "batch_size", "pairs per batch", type=int)
    _option(t, "--lr", TrainConfig, "lr", "learning rate of the heads, cues and re-ranker", type=float)
    _option(t, "--backbone-lr", TrainConfig, "backbone_lr", "learning rate of the fine-tuned backbone layers",
            type=float)
    _option(t, "--new-lr", TrainConfig, "new_lr", "learning rate of what --init's checkpoint lacks (a new module;"
            " 0: --lr)", type=float)
    _option(t, "--loss", TrainConfig, "loss", "Step-1 loss", choices=["infonce", "vsepp"])
    _option(t, "--seed", TrainConfig, "seed", "random seed", type=int)
    t.add_argument("--views", type=_views, default=None,
                   help="augmented views of the training photos besides the photos, comma-separated: flip (mirrored),"
                        " crop (a random crop of 55-100 %% of the photo, mirrored half of the time); each is cached"
                        " once below the fine-tuned layers (default: none)")
    t.add_argument("--learn-temperature", action="store_true",
                   help="learn the InfoNCE temperature, starting at 0.05 (default: fixed)")
    t.add_argument("--init", default=None, metavar="CHECKPOINT",
                   help="start from this checkpoint's trained weights (fine-tuning; same architecture and training"
                        " set) instead of from the pretrained backbones alone")
    _option(t, "--image-backbone", ModelConfig, "image_backbone", "image tower", choices=["lite0", "lite2", "tiny"])
    t.add_argument("--image-size", type=bounded(BOUNDS["image_size"]), default=None,
                   help="input size (default: the image tower's own)")
    _option(t, "--image-trainable-blocks", ModelConfig, "image_trainable_blocks",
            "top EfficientNet blocks fine-tuned, with the head (0: frozen tower)", type=int)
    _option(t, "--text-trainable-layers", ModelConfig, "text_trainable_layers",
            "top MiniLM layers fine-tuned (0: frozen tower)", type=int)
    _option(t, "--dim", ModelConfig, "dim", "joint embedding size", type=int)
    _option(t, "--concepts", ModelConfig, "n_concepts", "concept vocabulary size", type=int)
    _option(t, "--pool", ModelConfig, "pool", "pooling beside attention pooling: max, or gpo (generalised pooling,"
            " learnt)", choices=["max", "gpo"])
    _option(t, "--rerank-k", ModelConfig, "rerank_k",
            "Step-1 candidates re-ranked by Step 2 in validation, evaluate and search", type=int)
    for cue in CUES:
        t.add_argument(f"--no-{cue}", action="store_true", help=f"switch off the {cue} component (ablation)")
    t.add_argument("--baseline", action="store_true", help="plain two-tower baseline (every cue and Step 2 off)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="R@1/5/10 and rSum of a checkpoint on a dataset split")
    _data_args(e)
    e.add_argument("--split", default="test")
    e.add_argument("--checkpoint", default=None, help="checkpoint folder (default: the bundled one)")
    e.add_argument("--rerank-k", type=bounded(BOUNDS["rerank_k"]), default=None,
                   help="Step-1 candidates re-ranked by Step 2 (default: the checkpoint's, as search uses)")
    e.add_argument("--patches", choices=PATCH_FORMATS, default="q4",
                   help="patch features for Step 2: q4 as the index stores them (default), float16 as computed")
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


def _given(args, names) -> dict:
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def model_config(args) -> ModelConfig:
    """The model to train: the dataclass defaults (the tiny test configuration for ``--image-backbone tiny``)
    with the options that were given."""
    from ..model.backbones import IMAGE_BACKBONES

    tiny = args.image_backbone == "tiny"
    base = ModelConfig.tiny() if tiny else ModelConfig()
    changes = _given(args, ("image_backbone", "image_trainable_blocks", "text_trainable_layers", "dim",
                            "n_concepts", "rerank_k", "pool"))
    if args.image_size is not None:
        changes["image_size"] = args.image_size
    elif not tiny and args.image_backbone is not None:
        changes["image_size"] = IMAGE_BACKBONES[args.image_backbone][3]
    changes.update({f"use_{cue}": False for cue in CUES if args.baseline or getattr(args, f"no_{cue}")})
    try:
        return base.replace(**changes).validate("options")
    except ValueError as exc:
        raise SFEError(str(exc)) from exc


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


def _check_writable(flag: str, folder: Path, create: bool = True) -> None:
    """Refuse before the work starts what would fail at its end: ``folder`` (made when ``create``) must be a
    folder this process can write, or be creatable inside one."""
    probe = folder
    while create and not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        what = "does not exist" if not probe.exists() else "is not a folder"
        raise SFEError(f"{flag}: {show(probe)} {what}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise SFEError(f"{flag}: cannot write in {show(probe)} (permission denied)")


def cmd_train(args) -> int:
    import torch

    from ..data.datasets import load_dataset
    from ..settings import pick_device
    from ..train.loop import Trainer

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise SFEError(f"--out {show(out)} is a file; name a folder for the checkpoint")
    _check_writable("--out", out)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    device = pick_device(args.device)
    train = load_dataset(args.dataset, args.images, args.train_split)
    val = load_dataset(args.dataset, args.images, args.val_split)
    cfg = model_config(args)
    if args.init is not None and not Path(args.init, "config.json").is_file():
        raise SFEError(f"--init {show(Path(args.init))} is not a checkpoint folder (no config.json)")
    tcfg = TrainConfig(**_given(args, ("epochs", "batch_size", "lr", "backbone_lr", "new_lr", "loss", "seed", "views",
                                    "init")),
                       learn_temperature=args.learn_temperature)
    bars = _Bars()
    print(f"training on {len(train.images)} images / {len(train.captions)} captions, "
          f"validating on {len(val.images)} / {len(val.captions)}, device {device}", file=sys.stderr)
    trainer = Trainer(cfg, train, val, tcfg, device, _cache(args), Path(args.out),
                      log_fn=lambda s: print(s, file=sys.stderr, flush=True))
    result = trainer.fit(progress_factory=lambda ep: (lambda d, n, loss: bars(f"epoch {ep}", d, n, loss)),
                         meta={"command": " ".join(sys.argv[1:])})
    (out / "train_log.json").write_text(strict_json.dumps(result, indent=1), encoding="utf-8")
    if result.get("stopped"):
        print(f"stopped early: {result['stopped']}", file=sys.stderr)
    print(f"best epoch {result['best_epoch']}: val rSum {result['best_rsum']:.1f}; checkpoint in {show(out)}")
    return 0


def cmd_evaluate(args) -> int:
    from ..data.datasets import load_dataset
    from ..model.runtime import SFERuntime
    from ..train.evaluate import evaluate_dataset, write_json
    from ..model.metrics import format_metrics

    if args.json:
        _check_writable("--json", Path(args.json).parent, create=False)
    ds = load_dataset(args.dataset, args.images, args.split)
    rt = SFERuntime.load(args.checkpoint, args.device)
    result = evaluate_dataset(rt.model, ds, _cache(args), args.rerank_k, progress=_Bars(), patches=args.patches)
    print(f"{ds.name}: {result['images']} images, {result['captions']} captions, {result['seconds']} s")
    print(f"step1   {format_metrics(result['step1'])}")
    print(f"rerank  {format_metrics(result['rerank'])}  (Step 2 re-ranks the Step-1 top {result['rerank_k']}, "
          f"{args.patches} patches)")
    if args.json:
        write_json({"step1": result["step1"], "rerank": result["rerank"], "patches": args.patches}, args.json)
    return 0
