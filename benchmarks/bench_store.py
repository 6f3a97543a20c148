"""The patch store: bytes per photo of float16 patches against the 4-bit codec (``patches.q4``), encode and decode
throughput, reconstruction error against the codec's bound, and with ``--dataset`` the re-ranked rSum of a split
with float16 patches and with the codec's, from one run (the features are computed once).

Without ``--dataset`` the patches are synthetic (Gaussian, a different scale per dimension and per patch): the
byte and throughput figures hold, the error figures are only indicative; with it, they are the split's own patches.

    python benchmarks/bench_store.py [--photos 2000]
    python benchmarks/bench_store.py --dataset /work/shared/data/flickr8k/dataset_flickr8k.json --split val \\
        --cache-dir /work/cache/eval [--subset 300]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _common import load_runtime, machine  # noqa: E402


def timed(fn, repeat: int) -> float:
    """Median seconds of ``fn()`` over ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def synthetic_patches(n: int, n_patches: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.5, 1.5, dim) * rng.uniform(0.2, 2.0, (n, n_patches, 1))
    return (rng.standard_normal((n, n_patches, dim)) * scale).astype(np.float16)


def store_figures(patches: np.ndarray) -> None:
    """Bytes per photo on disk, throughput and reconstruction error of ``patches`` (N, P, D) float16."""
    from sfe_desktop.index.store import LEGACY_PATCHES_FILE, PATCHES_FILE, VectorStore

    n, n_patches, dim = patches.shape
    with tempfile.TemporaryDirectory() as tmp:
        store = VectorStore(tmp, dim, n_patches)
        codec = store.codec
        store.write(0, np.zeros((n, dim), np.float32), patches)
        q4 = os.path.getsize(Path(tmp, PATCHES_FILE)) / n
        old = VectorStore(tmp, dim, n_patches)._f16  # the float16 row file of an index made before the codec
        old.write(0, patches)
        f16 = os.path.getsize(Path(tmp, LEGACY_PATCHES_FILE)) / n
        rows = store.read_patches(np.arange(n))
    print(f"patch grid {n_patches} x {dim}, codec groups of {codec.group} dims, {n} photos")
    print(f"bytes per photo: float16 {f16:,.0f}   codec {q4:,.0f}   ratio {q4 / f16:.3f} "
          f"(target <= 12,288); 1,000,000 photos: {f16 * 1e6 / 2**30:.1f} GiB vs {q4 * 1e6 / 2**30:.1f} GiB")

    chunk = patches[:1024]
    enc = timed(lambda: codec.encode(chunk), 3)
    coded = codec.encode(patches[:100])
    dec = timed(lambda: codec.decode(coded), 20)
    cast = timed(lambda: patches[:100].astype(np.float32), 20)
    print(f"encode: {len(chunk) / enc:,.0f} photos/s   decode: {100 / dec:,.0f} photos/s "
          f"({dec * 1000:.1f} ms for the 100 rows a re-ranked query reads; float16 -> float32 of them: "
          f"{cast * 1000:.1f} ms)")

    x = patches.astype(np.float32)
    err = rows - x
    bound = codec.max_abs_error(codec.encode(patches))
    norm = np.linalg.norm(x, axis=-1)
    cos = (rows * x).sum(-1) / np.maximum(np.linalg.norm(rows, axis=-1) * norm, 1e-12)
    print(f"reconstruction: relative L2 error {np.linalg.norm(err, axis=-1).mean() / norm.mean():.4f} (mean over "
          f"patches), cosine loss {np.mean(1 - cos):.5f}, max |error| {np.abs(err).max():.4f}, "
          f"max |error| / bound {(np.abs(err) / np.maximum(bound, 1e-30)).max():.3f} (<= 1 by construction), "
          f"values over the bound: {int((np.abs(err) > bound + 1e-6 * np.abs(x)).sum())}")


def dataset_figures(args) -> None:
    """Re-ranked recall of a split with float16 patches and with the codec's, from features computed once, ranked
    by the functions ``evaluate`` uses. Paired as it goes (image->text first, then text->image in chunks of
    queries, both formats each time), so a run stopped early still prints a like-for-like comparison."""
    from sfe_desktop.data.datasets import load_dataset
    from sfe_desktop.model.features import encode_dataset
    from sfe_desktop.model.ranking import FusedScoring, image_to_texts, rank, rerank_depth, text_to_images
    from sfe_desktop.train.evaluate import dataset_lower, stored_patches
    from sfe_desktop.model.metrics import recall

    runtime, what = load_runtime(args.device)
    model = runtime.model
    print(f"model: {what}")
    ds = load_dataset(args.dataset, args.images, args.split)
    t = time.perf_counter()
    img, txt = dataset_lower(model, ds, Path(args.cache_dir) if args.cache_dir else None)
    images, texts = encode_dataset(model, img, txt)
    cap_img = np.asarray(ds.caption_image)
    if args.subset:
        keep = np.flatnonzero(cap_img < args.subset)
        images, texts, cap_img = images[list(range(args.subset))], texts[keep], cap_img[keep]
    print(f"{ds.name} {args.split}: {len(images)} images, {len(texts)} captions, features in "
          f"{time.perf_counter() - t:.0f} s", flush=True)
    store_figures(images.patches)
    k = rerank_depth(model.cfg, args.rerank_k)
    scoring = FusedScoring.of(model, images, texts)  # Step 1 does not read patches: the same for both
    formats = {fmt: stored_patches(images, fmt) for fmt in ("float16", "q4")}
    i2t = {}
    for fmt, imgs in formats.items():
        t = time.perf_counter()
        key = rank(scoring.i2t, scoring.rescore_i2t(image_to_texts(model, imgs, texts)), k).ranking_key()
        i2t[fmt] = {n: v for n, v in recall(key, cap_img).items() if n.startswith("i2t")}
        print(f"{fmt:8s} image->text re-ranked (top {k}): " + "  ".join(f"{n} {v:.1f}" for n, v in i2t[fmt].items())
              + f"   ({time.perf_counter() - t:.0f} s)", flush=True)
    t2i = {fmt: [] for fmt in formats}
    for a in range(0, len(texts), args.chunk):
        rows = np.arange(a, min(a + args.chunk, len(texts)))
        for fmt, imgs in formats.items():
            rescore = scoring.rescore_t2i(text_to_images(model, texts, imgs))
            t2i[fmt].append(rank(scoring.t2i[rows], lambda q, c: rescore(q + a, c), k).ranking_key())
        done = rows[-1] + 1
        rsum = {}
        for fmt in formats:
            m = {n: v for n, v in recall(np.concatenate(t2i[fmt]).T, cap_img[:done]).items() if n.startswith("t2i")}
            rsum[fmt] = sum(i2t[fmt].values()) + sum(m.values())
            print(f"{fmt:8s} text->image re-ranked, first {done} of {len(texts)} captions: "
                  + "  ".join(f"{n} {v:.1f}" for n, v in m.items()), flush=True)
        what = "" if done == len(texts) else f" (text->image on the first {done} captions only)"
        print(f"re-ranked rSum float16 {rsum['float16']:.2f} vs codec {rsum['q4']:.2f}: difference "
              f"{rsum['q4'] - rsum['float16']:+.2f} (target within 0.5){what}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=2000, help="synthetic photos (without --dataset)")
    ap.add_argument("--dataset", default=None, help="Karpathy-style JSON: measure on its split's patches and rSum")
    ap.add_argument("--images", default=None)
    ap.add_argument("--split", default="val")
    ap.add_argument("--cache-dir", default=None, help="backbone feature cache (as evaluate's --cache-dir)")
    ap.add_argument("--subset", type=int, default=0, help="only the first N images of the split and their captions")
    ap.add_argument("--rerank-k", type=int, default=None, help="default: the checkpoint's")
    ap.add_argument("--chunk", type=int, default=1000, help="text queries re-ranked per step (results after each)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    print(machine())
    if args.dataset:
        dataset_figures(args)
    else:
        runtime, what = load_runtime(args.device)
        print(f"model: {what}; synthetic patches (error figures only indicative: use --dataset)")
        store_figures(synthetic_patches(args.photos, runtime.grid[0] * runtime.grid[1], runtime.dim))


if __name__ == "__main__":
    main()
