"""Cluster indexing throughput on this machine: the same photos indexed by one process (``Collection.index``) and
by a Dask LocalCluster of 1 and of 2 worker processes (``--cluster local:N``), each into a fresh index folder.
Prints photos/s for the whole run (cluster start and model loads included), for the encode phase (first shard
submitted to last shard merged), and per worker (photos of its shards over the seconds it spent on them, model
already loaded), and the ratios to one worker and to one process.

    python benchmarks/bench_cluster.py [--n 200] [--images /work/shared/data/flickr8k/images] [--workers 1 2]

The photos are linked (symlinks) into a temporary folder, never copied.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict

sys.path.insert(0, os.path.dirname(__file__))
from _common import add_allocator_flag, machine, setup_allocator  # noqa: E402


def link_photos(source: str, n: int, folder: str) -> int:
    names = sorted(f for f in os.listdir(source) if f.lower().endswith((".jpg", ".jpeg")))[:n]
    for name in names:
        os.symlink(os.path.join(source, name), os.path.join(folder, name))
    return len(names)


def checkpoint(tmp: str) -> tuple[str, str]:
    """(checkpoint folder every worker loads, what it is): the bundled model, else the tiny model saved to tmp."""
    from sfe_desktop.errors import SFEError
    from sfe_desktop.model.runtime import SFERuntime

    try:
        rt = SFERuntime.load(None, "cpu")
        return str(rt.source), "bundled checkpoint"
    except SFEError as exc:
        print(f"note: bundled checkpoint unavailable ({exc}); the tiny model stands in (figures not representative)")
    from sfe_desktop.model.checkpoint import save_checkpoint
    from sfe_desktop.model.runtime import tiny_runtime

    rt = tiny_runtime(0)
    return str(save_checkpoint(rt.model, os.path.join(tmp, "tiny"), rt.meta, rt.corpus)), "tiny model"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--images", default="/work/shared/data/flickr8k/images")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--shard-size", type=int, default=25)
    ap.add_argument("--no-baseline", action="store_true", help="skip the one-process run")
    add_allocator_flag(ap)
    args = ap.parse_args()
    setup_allocator(args)  # this process (the one-process run, the coordinator); workers tune their own

    from sfe_desktop.model.runtime import SFERuntime
    from sfe_desktop.search import Collection
    import distributed

    from sfe_desktop.search.cluster import WorkerModel, worker_runtime

    print(machine())
    print(f"load average at start: {os.getloadavg()[0]:.1f} (the cores are shared: figures vary from run to run)")
    with tempfile.TemporaryDirectory(prefix="sfe-bench-cluster-") as tmp:
        photos = os.path.join(tmp, "photos")
        os.mkdir(photos)
        n = link_photos(args.images, args.n, photos)
        ckpt, what = checkpoint(tmp)
        runtime = SFERuntime.load(ckpt, "cpu")
        print(f"{n} photos from {args.images}; model: {what}; shards of {args.shard_size}")
        rows = []
        if not args.no_baseline:
            t = time.perf_counter()
            with Collection.open(photos, runtime, os.path.join(tmp, "idx-one")) as col:
                summary = col.index()
            wall = time.perf_counter() - t
            assert summary.indexed == n, summary
            rows.append(("one process", wall, n / summary.seconds, None, None))
        loads = {}
        for w in args.workers:
            marks: list[float] = []
            t = time.perf_counter()
            # the cluster is started here, as `--cluster local:N` starts it, so that the workers' model loads can
            # be timed apart from the encoding: every worker loads the checkpoint once, before the first shard
            model = WorkerModel(ckpt, "cpu", torch_threads=max(1, (os.cpu_count() or 1) // w))
            with distributed.LocalCluster(n_workers=w, threads_per_worker=1, processes=True,
                                          dashboard_address=":0") as lc, distributed.Client(lc) as client:
                started = time.perf_counter()
                client.run(worker_runtime, model)
                loads[w] = (started - t, time.perf_counter() - started)
                with Collection.open(photos, runtime, os.path.join(tmp, f"idx-{w}")) as col:
                    summary, done = col.index_on_cluster(client, model, shard_size=args.shard_size,
                                                         progress=lambda p: marks.append(time.perf_counter()))
            wall = time.perf_counter() - t
            assert summary.indexed == n, summary
            per: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
            for d in done:
                per[d.worker][0] += d.encoded + d.skipped
                per[d.worker][1] += d.seconds
            rates = [p / s for p, s in per.values()]
            rows.append((f"cluster local:{w}", wall, n / (marks[-1] - marks[0]), sum(rates) / len(rates),
                         len(per)))
        one = next((r for r in rows if r[0] == "cluster local:1"), None)
        base = next((r for r in rows if r[0] == "one process"), None)
        print(f"\n{'run':<18} {'wall s':>7} {'photos/s':>9} {'per worker':>11} {'workers':>8} {'vs 1 worker':>12} "
              f"{'vs 1 process':>13}")
        for name, wall, rate, per_worker, used in rows:
            print(f"{name:<18} {wall:7.1f} {rate:9.1f} {per_worker or float('nan'):11.1f} {used or 1:8d} "
                  f"{rate / one[2] if one else float('nan'):12.2f} {rate / base[2] if base else float('nan'):13.2f}")
        for w, (start, load) in loads.items():
            print(f"local:{w}: {start:.1f} s to start the cluster, {load:.1f} s for its workers to load the model")
        print("\nphotos/s: one process: photos over the run's seconds (scan and plan included); cluster: over the encode "
              "phase (first shard submitted to last merged; models loaded before); wall: the whole call, cluster start "
              "and model loads included. per worker: photos of a worker's shards over its seconds on them.")


if __name__ == "__main__":
    main()
