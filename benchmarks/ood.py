"""Out-of-domain retrieval check (issue 8): pictures unlike Flickr8k, each with a short name as its caption.

The data: ``benchmarks/data/twemoji`` (857 Twemoji pictures of objects, animals, food, places and activities
with their Unicode names; CC-BY 4.0, see its LICENSE.md). Every picture is a query for its name and every name
for its picture (one caption per picture). Reported for the checkpoint as a search ranks (the label bridge
fused in, Step 2 re-ranking), and, when the checkpoint has a bridge, for its trained part alone (Step 1) and
for the untrained label bridge alone.

    python benchmarks/ood.py [--checkpoint DIR] [--data benchmarks/data/twemoji] [--rerank-k K] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine  # noqa: E402

DATA = Path(__file__).parent / "data" / "twemoji"


def encode_folder(rt, data: Path, batch_size: int = 32):
    """(image features, text features) of the pictures listed in ``data/labels.json`` and their captions."""
    import torch

    from sfe_desktop.data.images import load_image
    from sfe_desktop.model.features import ImageFeatures

    items = json.loads((data / "labels.json").read_text(encoding="utf-8"))
    parts = []
    for a in range(0, len(items), batch_size):
        batch = torch.stack([rt.preprocess(load_image(data / it["file"], min_side=rt.image_size))
                             for it in items[a:a + batch_size]])
        parts.append(rt.encode_images(batch))
    return items, ImageFeatures.concat(parts), rt.encode_texts([it["caption"] for it in items], hub=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--rerank-k", type=int, default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    from sfe_desktop.memory import tune_allocator
    from sfe_desktop.model.runtime import SFERuntime
    from sfe_desktop.train.evaluate import evaluate_encoded
    from sfe_desktop.model.metrics import format_metrics, paired

    tune_allocator()
    print(machine())
    t0 = time.time()
    rt = SFERuntime.load(args.checkpoint, "cpu")
    items, images, texts = encode_folder(rt, Path(args.data))
    ranked: dict = {}
    res = evaluate_encoded(rt.model, images, texts, np.arange(len(items)), args.rerank_k, ranks_out=ranked)
    res["pictures"], res["seconds"] = len(items), round(time.time() - t0, 1)
    print(f"{len(items)} pictures from {args.data}, checkpoint {rt.checkpoint_id}")
    for key, label in (("rerank", "as searched (fused, re-ranked)"), ("step1", "Step 1 (fused)"),
                       ("model", "trained model alone (Step 1)"), ("bridge", "label bridge alone (untrained)")):
        if key in res:
            print(f"  {label:34s} {format_metrics(res[key])}")
    if "bridge" in ranked:  # is a difference from the bridge more than a few queries' luck?
        print("  query by query against the bridge alone (queries found by each, found by one only, exact McNemar p):")
        res["paired"] = {}
        for key in ("rerank", "step1"):
            for d, direction in enumerate(("i2t", "t2i")):
                for k in (1, 10):
                    c = paired(ranked[key][d], ranked["bridge"][d], k)
                    res["paired"][f"{key}_{direction}_r{k}"] = c
                    print(f"    {key:6s} {direction} R@{k:<2d} {c['a']:4d} vs {c['b']:4d}: {c['only_a']} only by the model,"
                          f" {c['only_b']} only by the bridge, p = {c['p']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
