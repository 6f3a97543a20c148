"""Photo -> captions latency, as a user meets it: one CLI call (a fresh process: cold) and a search in the app
(a process that already searched: warm), with the bundled model on CPU.

Targets (issue 10): under 3 s cold, under 1 s warm. The baseline, measured in the same run, is the same CLI call
without the on-disk corpus cache (``sfe_desktop/search/corpus_cache.py``): the first call ever for a checkpoint,
which computes the caption corpus's Step-1 vectors from the memory bank, as every call did before the cache. A
text search by CLI is timed too, for reference.

    python benchmarks/bench_captions.py [--photos 24] [--runs 3]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def make_photos(folder: Path, n: int) -> list[Path]:
    """``n`` generated 640x480 JPEGs (gradients and discs): no one's photos are needed to time a search."""
    import numpy as np
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        base = rng.integers(0, 255, 3)
        ramp = np.linspace(0, 1, 640)[None, :, None]
        arr = (base[None, None, :] * (0.4 + 0.6 * ramp) * np.ones((480, 1, 1))).astype(np.uint8)
        im = Image.fromarray(arr)
        draw = ImageDraw.Draw(im)
        for _ in range(6):
            x, y, r = int(rng.integers(0, 600)), int(rng.integers(0, 440)), int(rng.integers(20, 90))
            draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
        path = folder / f"gen_{i:03d}.jpg"
        im.save(path, quality=90)
        paths.append(path)
    return paths


def cli(args: list[str], env: dict) -> float:
    """Wall seconds of one ``sfe-desktop`` call in a fresh interpreter (what a shell does)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "sfe_desktop.cli", *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"sfe-desktop {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return seconds


def floor(env: dict, runs: int) -> tuple[float, float]:
    """(median wall seconds of a fresh interpreter that only imports torch, of one that also loads the bundled
    model): what any CLI call pays before it searches, the bound under the cold figure."""
    def timed(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
        return time.perf_counter() - start

    torch_only = [timed("import torch") for _ in range(runs)]
    loaded = [timed("from sfe_desktop.model.runtime import SFERuntime; SFERuntime.load(None, 'cpu')")
              for _ in range(runs)]
    return statistics.median(torch_only), statistics.median(loaded)


def in_process(folder: Path, photo: Path, runs: int) -> dict[str, float]:
    """In one process, as the app: open, prepare the captions (the app does it after indexing), search."""
    from sfe_desktop.model.runtime import SFERuntime
    from sfe_desktop.search.collection import Collection

    t0 = time.perf_counter()
    runtime = SFERuntime.load(None, "cpu")
    loaded = time.perf_counter() - t0
    col = Collection.open(folder, runtime)
    try:
        t0 = time.perf_counter()
        n = col.prepare_captions()
        prepared = time.perf_counter() - t0
        t0 = time.perf_counter()
        col.search_image(photo, top=20)
        first = time.perf_counter() - t0
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            col.search_image(photo, top=20)
            times.append(time.perf_counter() - t0)
    finally:
        col.close()
    return {"load": loaded, "prepare": prepared, "first": first, "warm": statistics.median(times), "captions": n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=24)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(machine())
    work = Path(tempfile.mkdtemp(prefix="sfe-bench-captions-"))
    try:
        folder = work / "photos"
        photos = make_photos(folder, args.photos)
        env = {**os.environ, "SFE_DATA_DIR": str(work / "data"), "SFE_DEVICE": "cpu",
               "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
        print(f"indexing {args.photos} generated photos: {cli(['index', str(folder)], env):.1f} s")
        cache = work / "data" / "cache"
        query = ["search", str(folder), "--image", str(photos[0]), "--top", "20"]
        baseline, cold = [], []
        for _ in range(args.runs):  # alternate, so that a busy moment of the machine hits both alike
            shutil.rmtree(cache, ignore_errors=True)
            baseline.append(cli(query, env))
            cold.append(cli(query, env))
        text = [cli(["search", str(folder), "a dog running on the beach", "--top", "20"], env)
                for _ in range(args.runs)]
        bare, loaded = floor(env, args.runs)
        os.environ["SFE_DATA_DIR"] = env["SFE_DATA_DIR"]  # the in-process part reads the same cache
        os.environ["SFE_DEVICE"] = "cpu"
        sys.path.insert(0, str(ROOT))
        warm = in_process(folder, photos[0], args.runs)
        b, c, t = statistics.median(baseline), statistics.median(cold), statistics.median(text)
        print(f"photo -> captions, CLI, no corpus cache (baseline, first call ever): median {b:.2f} s "
              f"{[round(x, 2) for x in baseline]}")
        print(f"photo -> captions, CLI, corpus cache on disk (cold):                median {c:.2f} s "
              f"{[round(x, 2) for x in cold]}  target < 3 s; {b / c:.1f}x faster than the baseline")
        print(f"text -> photos, CLI (reference):                                    median {t:.2f} s")
        print(f"the floor of any CLI call: a fresh interpreter importing torch {bare:.2f} s; importing the project "
              f"and loading the bundled model {loaded:.2f} s; photo -> captions adds {c - loaded:.2f} s to that")
        print(f"in one process ({warm['captions']:,} captions): model load {warm['load']:.2f} s, "
              f"captions prepared from the cache {warm['prepare'] * 1000:.0f} ms, first search "
              f"{warm['first'] * 1000:.0f} ms, warm search median {warm['warm'] * 1000:.0f} ms  target < 1 s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
