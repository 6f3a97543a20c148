"""Grounding checks of the heatmap the app draws, on a val split (issue 8):

* **mosaic pointing**: 2x2 mosaics of four photos whose captions share no content word; the query is one
  photo's caption. Reported: the share of the heatmap's mass in that photo's quadrant, and how often the
  hottest patch lies in it (chance 25 %), for the whole caption and for each content word's row
  ("dog" in a mosaic of dog / car / pizza / beach). A grid cell that straddles the centre lines counts
  for each quadrant by the share of its area there.
* **deletion faithfulness**: single photos with one of their captions; the top 10 % of patches by the
  heatmap are filled with the photo's mean colour and the photo is encoded again; the drop of the pair's
  score (as a search ranks it: Step 2 with the bridge fused in) is compared with filling 10 % random patches
  (the mean of three draws).

Each grounding mode of the explanation is measured (``--modes``): "regions" (what the app draws: the "mixed" rows
weighted by where the whole text matches windows of the photo, each window encoded on its own), "mixed" (each
word's Step-2 attention row mixed with the class map of the ImageNet classes it names), "attention", "classes".
The windows of "regions" include the four quadrant-sized ones, so a mosaic suits them; ``--offset`` moves the
mosaic's dividing lines off the centre (e.g. 0.1: at 40 % or 60 % of the side, drawn per mosaic) to measure
without that advantage.

    python benchmarks/grounding.py --dataset ../shared/data/flickr8k/dataset_flickr8k.json \
        --images ../shared/data/flickr8k/images --split val [--mosaics 300] [--deletions 300] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine  # noqa: E402

from sfe_desktop.train.mosaic import content_words, photo_words  # noqa: E402


def pointing(heat: np.ndarray, quad: np.ndarray, q: int) -> tuple[float, float]:
    """(mass share in quadrant ``q``, credit of the hottest cell in ``q``) of one heatmap row."""
    heat = np.clip(np.asarray(heat, np.float64), 0, None)
    total = heat.sum()
    mass = float((heat * quad[q]).sum() / total) if total > 0 else 0.25
    return mass, float(quad[q][int(np.argmax(heat))])


def pick_mosaics(ds, n: int, rng: np.random.Generator) -> list[tuple[list[int], int, int]]:
    """(four image indices, quadrant of the query photo, caption index) with no shared content word."""
    caps_of = ds.captions_of()
    words_of = photo_words(ds.captions, caps_of)
    out, tries = [], 0
    while len(out) < n and tries < 200 * n:
        tries += 1
        imgs = rng.choice(len(ds.images), 4, replace=False).tolist()
        q = int(rng.integers(4))
        cap = int(rng.choice(caps_of[imgs[q]]))
        query = content_words(ds.captions[cap])
        if query and all(not (query & words_of[i]) for k, i in enumerate(imgs) if k != q):
            out.append((imgs, q, cap))
    return out


def mosaic_image(paths, size: int, at: tuple[float, float] = (0.5, 0.5)):
    """The four photos in a square of ``size`` divided at fractions ``at`` (down, across) of the side."""
    from PIL import Image

    from sfe_desktop.data.images import load_image

    y, x = round(at[0] * size), round(at[1] * size)
    canvas = Image.new("RGB", (size, size))
    for k, p in enumerate(paths):
        top, left = (k // 2) * y, (k % 2) * x
        box = (x if k % 2 == 0 else size - x, y if k // 2 == 0 else size - y)
        canvas.paste(load_image(p, min_side=max(box)).resize(box, Image.BILINEAR), (left, top))
    return canvas


def fill_cells(image, cells: np.ndarray, grid: tuple[int, int], size: int):
    """The photo at the model's input size with the given grid cells filled with its mean colour."""
    from PIL import Image

    arr = np.asarray(image.resize((size, size), Image.BILINEAR)).copy()
    mean = arr.reshape(-1, 3).mean(0).astype(arr.dtype)
    h, w = grid
    for c in cells.tolist():
        r, k = divmod(int(c), w)
        arr[round(r * size / h):round((r + 1) * size / h), round(k * size / w):round((k + 1) * size / w)] = mean
    return Image.fromarray(arr)


def run(rt, ds, n_mosaics: int, n_deletions: int, modes, seed: int = 0, progress=print, offset: float = 0.0) -> dict:
    """Mosaic pointing and deletion faithfulness of the heatmap of each grounding mode in ``modes``; ``offset``:
    each mosaic's dividing lines drawn uniformly within that distance of the centre."""
    import torch

    from sfe_desktop.data.images import load_image
    from sfe_desktop.train.mosaic import quadrant_weights

    rng = np.random.default_rng(seed)
    caption_rows = {m: [] for m in modes}
    word_rows = {m: [] for m in modes}
    t0 = time.time()
    for n, (imgs, q, cap) in enumerate(pick_mosaics(ds, n_mosaics, rng)):
        at = tuple(0.5 + rng.uniform(-offset, offset, 2)) if offset else (0.5, 0.5)
        quad = quadrant_weights(rt.grid, at)
        pixels = rt.preprocess(mosaic_image([ds.image_paths[i] for i in imgs], rt.image_size, at))
        image = rt.encode_images(pixels[None], logits=True)
        text = rt.encode_texts([ds.captions[cap]])
        wanted = content_words(ds.captions[cap])
        for mode in modes:
            ex = rt.explain(text, image, grounding=mode, pixels=pixels)
            caption_rows[mode].append(pointing(ex.heatmap, quad, q))
            for word, row in zip(ex.words, ex.attention):
                if word.lower() in wanted:
                    word_rows[mode].append(pointing(row, quad, q))
        if progress and (n + 1) % 50 == 0:
            progress(f"mosaics {n + 1}/{n_mosaics} ({time.time() - t0:.0f} s)")
    drops = {m: ([], []) for m in modes}
    n_cells = rt.grid[0] * rt.grid[1]
    k = max(1, round(0.1 * n_cells))
    caps_of = ds.captions_of()
    for n, i in enumerate(rng.choice(len(ds.images), min(n_deletions, len(ds.images)), replace=False).tolist()):
        photo = load_image(ds.image_paths[i], min_side=rt.image_size)
        text = rt.encode_texts([ds.captions[int(rng.choice(caps_of[i]))]])
        pixels = rt.preprocess(photo)
        image = rt.encode_images(pixels[None], logits=True)
        base = float(rt.pair_scores(text, image)[0])
        randoms = [fill_cells(photo, rng.choice(n_cells, k, replace=False), rt.grid, rt.image_size) for _ in range(3)]
        variants = [fill_cells(photo, np.argsort(-np.asarray(rt.explain(text, image, grounding=m, pixels=pixels).heatmap))[:k],
                               rt.grid, rt.image_size) for m in modes]
        batch = np.stack([rt.preprocess(v).numpy() for v in variants + randoms])
        scores = rt.pair_scores(text, rt.encode_images(torch.from_numpy(batch)))
        for j, mode in enumerate(modes):
            drops[mode][0].append(base - scores[j])
            drops[mode][1].append(base - float(np.mean(scores[len(modes):])))
        if progress and (n + 1) % 50 == 0:
            progress(f"deletions {n + 1}/{n_deletions} ({time.time() - t0:.0f} s)")
    out = {"seconds": None}
    for mode in modes:
        cr, wr = np.asarray(caption_rows[mode]), np.asarray(word_rows[mode]).reshape(-1, 2)
        deleted = len(drops[mode][0])
        top_mean = float(np.mean(drops[mode][0])) if deleted else None
        rand_mean = float(np.mean(drops[mode][1])) if deleted else None
        out[mode] = {
            "mosaics": len(cr), "words": len(wr),
            "caption_mass": float(cr[:, 0].mean()), "caption_hit": float(cr[:, 1].mean()),
            "word_mass": float(wr[:, 0].mean()) if len(wr) else None,
            "word_hit": float(wr[:, 1].mean()) if len(wr) else None,
            "deletions": len(drops[mode][0]), "drop_top10": top_mean, "drop_random10": rand_mean,
            "drop_ratio": None if not deleted else top_mean / rand_mean if rand_mean > 0 else float("inf"),
        }
    out["seconds"] = round(time.time() - t0, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--split", default="val")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--mosaics", type=int, default=300)
    ap.add_argument("--deletions", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--modes", default="regions,mixed,attention,classes",
                    help="grounding modes to compare (the first is the app's): regions, mixed, attention, classes")
    ap.add_argument("--offset", type=float, default=0.0,
                    help="move each mosaic's dividing lines up to this fraction of the side off the centre")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    from sfe_desktop.data.datasets import load_karpathy
    from sfe_desktop.memory import tune_allocator
    from sfe_desktop.model.runtime import SFERuntime

    tune_allocator()
    rt = SFERuntime.load(args.checkpoint, "cpu")
    ds = load_karpathy(args.dataset, args.images, args.split)
    print(machine())
    modes = args.modes.split(",") if rt.model.bridge is not None else [m for m in ("regions", "attention")
                                                                        if m in args.modes.split(",")]
    res = run(rt, ds, args.mosaics, args.deletions, modes, args.seed, offset=args.offset)
    res["offset"] = args.offset
    for mode in modes:
        r = res[mode]
        print(f"[{mode}] mosaic pointing ({r['mosaics']} mosaics, chance 25 %): caption heatmap mass"
              f" {100 * r['caption_mass']:.1f} %, hottest patch {100 * r['caption_hit']:.1f} %")
        if r["words"]:
            print(f"[{mode}]   word rows ({r['words']} content words): mass {100 * r['word_mass']:.1f} %,"
                  f" hottest patch {100 * r['word_hit']:.1f} %")
        if r["deletions"]:
            print(f"[{mode}] deletion ({r['deletions']} pairs): score drop top-10 % patches {r['drop_top10']:.4f} vs"
                  f" random 10 % {r['drop_random10']:.4f}: ratio {r['drop_ratio']:.2f}")
    print(f"{res['seconds']:.0f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
