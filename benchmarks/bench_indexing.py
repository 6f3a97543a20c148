"""Indexing throughput on 12-megapixel JPEGs: the whole pipeline (scan, decode in a thread pool,
catalog, row files, faiss, thumbnails, SFE Step 1) against a bare loop that only runs the image
backbone on pre-decoded tensors of the same batches. Target ratio >= 0.8.

    python benchmarks/bench_indexing.py [--n 40] [--dir /tmp/sfe-bench-12mp]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(__file__))
from _common import add_allocator_flag, load_runtime, machine, setup_allocator  # noqa: E402


def make_photos(folder: str, n: int, size=(4000, 3000)) -> None:
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        path = os.path.join(folder, f"IMG_{i:04d}.jpg")
        if os.path.exists(path):
            continue
        small = Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).resize(size, Image.BICUBIC)
        noise = rng.integers(-12, 12, (size[1], size[0], 3), dtype=np.int16)
        pixels = np.clip(np.asarray(small, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(path, quality=90)


def per_image_cpu(runtime, paths: list[str]) -> float:
    """CPU seconds per photo of what the decode threads do: reduced JPEG decode, model preprocessing
    and the thumbnail (the same calls as ``Indexer._decode``), one photo at a time."""
    from sfe_desktop.data.images import load_image
    from sfe_desktop.index.thumbs import ThumbnailCache

    with tempfile.TemporaryDirectory() as tmp:
        thumbs = ThumbnailCache(tmp)
        t = time.process_time()
        for i, p in enumerate(paths):
            image = load_image(p, min_side=max(runtime.image_size, thumbs.size))
            runtime.preprocess(image)
            thumbs.put(str(i), image)
        return (time.process_time() - t) / len(paths)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--dir", default=None, help="photo folder (default: a temp folder per --n)")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="cpu (the target's setting) or cuda")
    add_allocator_flag(ap)
    args = ap.parse_args()
    setup_allocator(args)

    from sfe_desktop.data.images import load_image
    from sfe_desktop.search import Collection

    print(machine())
    t = time.perf_counter()
    args.dir = args.dir or os.path.join(tempfile.gettempdir(), "sfe-bench-12mp" + ("" if args.n == 40 else f"-{args.n}"))
    make_photos(args.dir, args.n)
    mb = sum(os.path.getsize(os.path.join(args.dir, f)) for f in os.listdir(args.dir) if f.endswith(".jpg")) / 1e6
    print(f"{args.n} JPEGs of 4000x3000 ({mb / args.n:.1f} MB each) ready in {time.perf_counter() - t:.1f} s")
    runtime, what = load_runtime(args.device)
    sync = torch.cuda.synchronize if runtime.device.type == "cuda" else (lambda: None)
    print(f"model: {what}; device {runtime.device}")

    paths = sorted(os.path.join(args.dir, f) for f in os.listdir(args.dir) if f.endswith(".jpg"))
    assert len(paths) == args.n, f"{args.dir} holds {len(paths)} JPEGs, not --n {args.n}"
    tensors = [runtime.preprocess(load_image(p, runtime.image_size)) for p in paths]
    decode_cpu = per_image_cpu(runtime, paths)
    pipeline, bare, step1 = [], [], []
    for _ in range(args.repeat):  # interleaved repeats, medians reported: shared CPUs are noisy
        index_dir = tempfile.mkdtemp(prefix="sfe-bench-index-")
        try:
            col = Collection.open(args.dir, runtime, index_dir, batch_size=args.batch_size)
            bs = col.batch_size
            runtime.encode_images(torch.zeros(bs, 3, runtime.image_size, runtime.image_size))  # warm-up
            t = time.perf_counter()
            summary = col.index()
            pipeline.append(time.perf_counter() - t)
            col.close()
            assert summary.indexed == args.n, summary
        finally:
            shutil.rmtree(index_dir, ignore_errors=True)
        # bare loop: pre-decoded tensors, the same batches, the image backbone only
        batches = [torch.stack(tensors[i:i + bs]).to(runtime.device) for i in range(0, len(tensors), bs)]
        with torch.inference_mode():
            runtime.model.image(batches[0])  # warm-up (CUDA kernels, allocator)
            sync()
            t = time.perf_counter()
            for b in batches:
                runtime.model.image(b)
            sync()
            bare.append(time.perf_counter() - t)
            t = time.perf_counter()
            for b in batches:
                runtime.encode_images(b)
            step1.append(time.perf_counter() - t)
    pipeline_s, bare_s, step1_s = (float(np.median(x)) for x in (pipeline, bare, step1))
    print("runs (s): pipeline", [round(x, 2) for x in pipeline], "bare", [round(x, 2) for x in bare],
          "step1", [round(x, 2) for x in step1])
    n = args.n
    print(f"batch size {bs}, decode threads {col.workers}")
    print(f"pipeline (Collection.index):          {n / pipeline_s:6.2f} images/s ({pipeline_s:.2f} s)")
    print(f"bare backbone loop (pre-decoded):     {n / bare_s:6.2f} images/s ({bare_s:.2f} s)")
    print(f"Step-1 encode loop (pre-decoded):     {n / step1_s:6.2f} images/s ({step1_s:.2f} s)")
    print(f"ratio pipeline / bare backbone:       {bare_s / pipeline_s:.2f}  (target >= 0.8)")
    print(f"ratio pipeline / Step-1 encode loop:  {step1_s / pipeline_s:.2f}")
    cores = os.cpu_count() or 1
    ceiling = bare_s / (bare_s + n * decode_cpu / cores)
    print(f"decode + preprocess + thumbnail:      {1000 * decode_cpu:6.1f} ms of CPU per photo")
    print(f"ceiling of the ratio on {cores} cores:       {ceiling:.2f}  (bare / (bare + decode CPU / cores): "
          "the backbone already keeps every core busy, so decoding cannot hide behind it)")


if __name__ == "__main__":
    main()
