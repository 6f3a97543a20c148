"""Query latency on a synthetic collection of 100,000 indexed images (random normalised vectors and
random patches written through the index layer (stored as 4-bit codes); no image decoding), on CPU.

Targets: text->image median < 50 ms for Step 1 alone, < 300 ms with Step-2 re-ranking of the top
100; opening the existing index < 2 s. Also prints the memory of that index.

    python benchmarks/bench_query.py [--n 100000] [--dir /tmp/sfe-bench-100k]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _common import add_allocator_flag, load_runtime, machine, rss_mb, setup_allocator  # noqa: E402

QUERIES = ["a dog running on the beach", "two children playing football", "a red car parked in the street",
           "sunset over the mountains", "a plate of pasta", "a cat sleeping on a sofa", "people at a wedding",
           "a boat on a lake", "snow covered trees", "a birthday cake with candles"]


def build(col, n: int, chunk: int = 10_000) -> None:
    """Write ``n`` random entries through the index state, as an index run's batches would."""
    from sfe_desktop.catalog import FileRow
    from sfe_desktop.model.features import ImageFeatures

    rt = col.runtime
    rng = np.random.default_rng(0)
    for start in range(0, n, chunk):
        k = min(chunk, n - start)
        g = rng.standard_normal((k, rt.vector_dim)).astype(np.float32)
        g /= np.linalg.norm(g, axis=1, keepdims=True)
        p = rng.standard_normal((k, col.n_patches, rt.dim)).astype(np.float16)
        rows = [FileRow(None, f"{i // 1000:03d}/IMG_{i:06d}.jpg".encode(), 3_000_000, i, f"{i:040x}", 4000, 3000,
                        "2024-01-01T12:00:00", "ok", None, None) for i in range(start, start + k)]
        col.state.append(rows, ImageFeatures(g, p))


def median_ms(fn, queries, repeat: int = 3, before=None) -> float:
    times = []
    for _ in range(repeat):
        for q in queries:
            if before is not None:
                before()
            t = time.perf_counter()
            fn(q)
            times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "sfe-bench-100k"))
    ap.add_argument("--keep", action="store_true", help="keep the synthetic index")
    add_allocator_flag(ap)
    args = ap.parse_args()
    setup_allocator(args)

    from sfe_desktop.search import Collection

    print(machine())
    runtime, what = load_runtime("cpu")
    print(f"model: {what}; dim {runtime.dim}, patch grid {runtime.grid}")
    photos = os.path.join(args.dir, "photos")
    shutil.rmtree(args.dir, ignore_errors=True)
    os.makedirs(photos)
    index_dir = os.path.join(args.dir, "index")
    try:
        t = time.perf_counter()
        with Collection.open(photos, runtime, index_dir) as col, col.state.writing():
            col.reset()
            build(col, args.n)
        print(f"built {args.n} synthetic entries in {time.perf_counter() - t:.1f} s")

        import gc

        gc.collect()
        rss0 = rss_mb()
        t = time.perf_counter()
        col = Collection.open(photos, runtime, index_dir)
        open_s = time.perf_counter() - t
        rss_open = rss_mb()
        info = col.info()
        assert info["vectors"] == args.n, info
        k = runtime.rerank_k  # the depth searches use by default
        col.search_text("warm up", top=20)
        # every timed query encodes its text: the collection's query cache is emptied before each one
        step1 = median_ms(lambda q: col.search_text(q, top=20, rerank_k=0), QUERIES, before=col.searcher.clear_cache)
        rerank = median_ms(lambda q: col.search_text(q, top=20, rerank_k=k), QUERIES, before=col.searcher.clear_cache)
        q = runtime.encode_texts(["a dog"]).global_
        faiss_only = median_ms(lambda _: col.state.vindex.search(q, 100), QUERIES)
        text_only = median_ms(lambda s: runtime.encode_texts([s]), QUERIES)
        rss_query = rss_mb()
        col.close()
        sizes = {f: os.path.getsize(os.path.join(index_dir, f)) / 1e6 for f in os.listdir(index_dir)
                 if os.path.isfile(os.path.join(index_dir, f))}
    finally:
        if not args.keep:
            shutil.rmtree(args.dir, ignore_errors=True)
    print(f"index kind: {info['index_kind']}; files (MB): " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(sizes.items())))
    print(f"open existing index:               {open_s * 1000:7.0f} ms  (target < 2000)")
    print(f"text->image Step 1 only (median):  {step1:7.1f} ms  (target < 50; includes text encoding {text_only:.1f} ms, "
          f"faiss top-100 {faiss_only:.1f} ms)")
    print(f"text->image + Step 2 on top {k}:   {rerank:7.1f} ms  (target < 300)")
    print(f"memory: faiss index in RAM {args.n * runtime.vector_dim * 4 / 1e6:.0f} MB (vectors) ; patches memory-mapped "
          f"({sizes.get('patches.q4', 0):.0f} MB on disk, {k} rows read per re-ranked query)")
    print(f"resident memory: +{rss_open - rss0:.0f} MB after opening, +{rss_query - rss0:.0f} MB after the queries "
          f"(process {rss_query:.0f} MB including the model)")


if __name__ == "__main__":
    main()
