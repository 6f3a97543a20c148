"""Where an indexing run's CPU goes, per 12 MP photo, one stage at a time on one thread: content hash, reduced JPEG
decode, model preprocessing, EXIF probe, thumbnail, and the image encoder (its frozen lower part apart). The
pipeline keeps every core busy (``bench_indexing.py``), so their sum bounds the photos/s on this machine's cores;
with ``--base-rate`` (an older release's photos/s from ``bench_indexing.py --base``) it prints how fast the lower
part would have to be for a wanted ratio.

    python benchmarks/profile_indexing.py [--n 16] [--base-rate 16.84] [--ratio 1.6]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import load_runtime, machine  # noqa: E402
from bench_indexing import make_photos  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=16, help="photos timed (of the 40 that bench_indexing.py makes)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--base-rate", type=float, default=None, help="an older release's photos/s, for the ratio")
    ap.add_argument("--ratio", type=float, default=1.6)
    args = ap.parse_args()
    from sfe_desktop.catalog import content_hash
    from sfe_desktop.catalog.metadata import probe
    from sfe_desktop.data.images import load_image
    from sfe_desktop.index.thumbs import ThumbnailCache

    folder = os.path.join(tempfile.gettempdir(), "sfe-bench-12mp")
    make_photos(folder, 40)
    paths = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".jpg"))[: args.n]
    cores = os.cpu_count() or 1
    torch.set_num_threads(1)
    print(machine(), "- timed on 1 thread")
    runtime, what = load_runtime("cpu")
    print(f"model: {what}")
    cpu: dict[str, float] = {}

    def timed(stage, fn):
        t = time.process_time()
        out = fn()
        cpu[stage] = cpu.get(stage, 0.0) + (time.process_time() - t) / len(paths)
        return out

    tensors = []
    with tempfile.TemporaryDirectory() as tmp:
        thumbs = ThumbnailCache(tmp)
        for i, p in enumerate(paths):
            timed("content hash", lambda: content_hash(p, os.path.getsize(p)))
            image = timed("JPEG decode (draft)", lambda: load_image(p, min_side=max(runtime.image_size, thumbs.size)))
            tensors.append(timed("preprocess", lambda: runtime.preprocess(image)))
            timed("EXIF probe", lambda: probe(p))
            timed("thumbnail", lambda: thumbs.put(f"{i:08d}", image))
    batches = [torch.stack(tensors[i:i + args.batch_size]) for i in range(0, len(tensors), args.batch_size)]
    runtime.encode_images(batches[0])  # warm-up; builds the hubness bank once
    with torch.inference_mode():
        for b in batches:
            lower = timed("encoder: frozen lower part", lambda: runtime.model.image.lower(b))
            timed("encoder: the rest (Step 1)", lambda: runtime.encode_images(b) and None)
    cpu["encoder: the rest (Step 1)"] -= cpu["encoder: frozen lower part"]  # encode_images runs the lower part too
    del lower
    total = sum(cpu.values())
    for stage, s in cpu.items():
        print(f"{stage:30s} {1000 * s:7.2f} ms/photo  {100 * s / total:5.1f} %")
    print(f"{'sum':30s} {1000 * total:7.2f} ms/photo: at most {cores / total:.1f} photos/s on {cores} cores")
    if args.base_rate:
        want = args.ratio * args.base_rate
        rest = total - cpu["encoder: frozen lower part"]
        need = cores / want - rest
        print(f"{args.ratio}x of {args.base_rate} photos/s = {want:.1f} photos/s needs at most {1000 * cores / want:.1f} "
              f"ms/photo: the lower part would have to take {1000 * need:.1f} ms (now "
              f"{1000 * cpu['encoder: frozen lower part']:.1f})" if need > 0 else
              f"{args.ratio}x is out of reach even with a free lower part ({1000 * rest:.1f} ms/photo without it)")


if __name__ == "__main__":
    main()
