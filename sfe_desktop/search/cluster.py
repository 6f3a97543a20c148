"""Index a collection with a Dask cluster: the coordinator scans and plans as a one-process run does, splits the
photos to encode into shards, each worker encodes its shards with the same decode/encode pipeline
(:meth:`Indexer.encode_files`) into shard folders (:mod:`.shards`), and the coordinator merges each finished shard
into the index as it arrives.

Dask (``pip install 'sfe-desktop[cluster]'``) is imported only here, and only when a cluster run starts; the rest
of the program never needs it. Workers must see the photo folder and the shard folder at the same paths as the
coordinator (a NAS mounted alike everywhere), and have this package installed.

An interrupted run loses nothing: shards finished before the interruption are merged by the next run (or when the
app opens the folder, :meth:`Collection.open`), and the photos of unfinished ones are planned and encoded again.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import SFEError
from ..memory import tune_allocator
from ..model.runtime import SFERuntime
from . import shards
from .indexer import Indexer, _Job
from .state import IndexFormat, IndexState
from .types import IndexProgress, IndexSummary

log = logging.getLogger(__name__)

INSTALL_HINT = "indexing on a cluster needs Dask: pip install 'sfe-desktop[cluster]' (in a checkout: pip install -e '.[cluster]')"
DEFAULT_SHARD_SIZE = 256   # photos per shard: about 20 s of one worker's time at 12 photos/s, 10 MB of rows


def _dask():
    """The ``distributed`` module, or SFEError with the one line that says how to install it."""
    try:
        import distributed
    except ImportError as exc:
        raise SFEError(INSTALL_HINT) from exc
    return distributed


# -- the worker side ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerModel:
    """How a worker gets the model, once per worker process (then kept for its later shards).

    ``checkpoint``: a checkpoint folder every worker can read (None: each worker's default, the bundled model or
    ``SFE_CHECKPOINT``); ``factory``: instead, a picklable function returning an :class:`SFERuntime` (tests), with a
    ``key`` naming it; ``torch_threads``: intra-op threads per worker (None: torch's default)."""

    checkpoint: str | None = None
    device: str = "cpu"
    factory: Callable[[], SFERuntime] | None = None
    key: str | None = None
    torch_threads: int | None = None

    @property
    def cache_key(self) -> str:
        return self.key or f"{self.checkpoint}|{self.device}"

    def load(self) -> SFERuntime:
        return self.factory() if self.factory is not None else SFERuntime.load(self.checkpoint, self.device)


_RUNTIMES: dict[str, SFERuntime] = {}
_RUNTIMES_LOCK = threading.Lock()


def worker_runtime(model: WorkerModel) -> SFERuntime:
    """The runtime of ``model`` in this process, loaded on the first shard and kept for the next ones. A worker
    process is an entry point: its allocator is tuned as the CLI's and the app's are (:mod:`sfe_desktop.memory`;
    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which makes every batch page-fault its
    activations in again)."""
    with _RUNTIMES_LOCK:
        runtime = _RUNTIMES.get(model.cache_key)
        if runtime is None:
            tune_allocator()
            if model.torch_threads:
                import torch

                torch.set_num_threads(model.torch_threads)
            runtime = _RUNTIMES[model.cache_key] = model.load()
        return runtime


@dataclass(frozen=True)
class ShardTask:
    """One shard's work: the photos (with the content hash the coordinator computed) and where to write."""

    photo_dir: str
    shard_root: str
    name: str
    files: tuple[tuple, ...]  # ScanEntry fields, content hash
    model: WorkerModel
    fmt_meta: dict
    batch_size: int
    decode_threads: int


@dataclass(frozen=True)
class ShardDone:
    """What a worker reports for a finished shard (the rows themselves are in the shard folder)."""

    name: str
    path: str
    encoded: int
    skipped: int
    seconds: float   # decoding and encoding this shard (the model already loaded)
    worker: str      # host:pid


def encode_shard(task: ShardTask) -> ShardDone:
    """Encode one shard on a worker and write it (the task each Dask worker runs)."""
    from ..catalog import ScanEntry

    runtime = worker_runtime(task.model)
    made = IndexFormat.of(runtime).meta()
    if {k: str(v) for k, v in made.items()} != {k: str(v) for k, v in task.fmt_meta.items()}:
        raise SFEError(f"the worker's model ({made['checkpoint_id']}) is not the coordinator's "
                       f"({task.fmt_meta['checkpoint_id']}): give every worker the same checkpoint")
    start = time.perf_counter()
    writer = shards.ShardWriter(task.photo_dir, task.shard_root, task.name, task.fmt_meta)
    try:
        files = [(ScanEntry(*entry), h) for *entry, h in task.files]
        Indexer(writer, runtime, task.batch_size, task.decode_threads).encode_files(files)
        path = writer.finish()
    except BaseException:
        writer.discard()
        raise
    encoded = sum(r.vec_row is not None for r in writer.rows)
    return ShardDone(task.name, str(path), encoded, len(writer.rows) - encoded, time.perf_counter() - start,
                     _worker_name())


def _worker_name() -> str:
    """The Dask worker's address (threads of one process are separate workers), else host:pid."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


# -- the coordinator side ----------------------------------------------------------------------------------
class ClusterIndexer(Indexer):
    """An index run whose encoding is done by a Dask cluster's workers, shard by shard: scanning, planning
    (renames, copies, deletions) and the end of the run (faiss, compaction) are the one-process run's."""

    def __init__(self, state: IndexState, runtime: SFERuntime, client, model: WorkerModel, shard_root: Path,
                 shard_size: int, batch_size: int, decode_threads: int,
                 progress: Callable[[IndexProgress], None] | None = None, cancel: threading.Event | None = None):
        super().__init__(state, runtime, batch_size, decode_threads, progress, cancel)
        self.client = client
        self.model = model
        self.shard_root = shard_root
        self.shard_size = shard_size
        self.done: list[ShardDone] = []
        self.failures: list[str] = []
        self.leftover = shards.MergeSummary()

    def _plan(self, pool: ThreadPoolExecutor):
        # shards an interrupted run finished are merged first: the plan then finds their photos indexed
        self.leftover = shards.merge_shards(self.state, self.shard_root)
        return super()._plan(pool)

    def _tasks(self, jobs: list[_Job]) -> Iterator[ShardTask]:
        run = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
        fmt = self.state.format.meta()
        for i in range(0, len(jobs), self.shard_size):
            files = tuple((j.entry.rel, j.entry.size, j.entry.mtime_ns, j.entry.error, j.entry.ino, j.hash)
                          for j in jobs[i:i + self.shard_size])
            yield ShardTask(str(self.state.photo_dir), str(self.shard_root), f"{run}-{i // self.shard_size:06d}",
                            files, self.model, fmt, self.batch_size, self.workers)

    def _encode(self, pool: ThreadPoolExecutor, jobs: list[_Job]) -> bool:
        """Submit the shards a few at a time (the scheduler holds a window of them, not millions), merge each as it
        finishes; True when cancelled."""
        distributed = _dask()
        window = max(8, 4 * sum(self.client.nthreads().values()))
        tasks = self._tasks(jobs)
        self.indexed = self.leftover.encoded
        skipped = 0
        started = time.perf_counter()
        self._report(0, len(jobs), 0.0, "", 0)
        pending: set = set()
        try:
            while True:
                while len(pending) < window and (task := next(tasks, None)) is not None:
                    pending.add(self.client.submit(encode_shard, task, key=f"sfe-shard-{task.name}", pure=False))
                if not pending:
                    return False
                if self.cancel.is_set():
                    return True
                try:
                    finished = distributed.wait(list(pending), timeout=0.5, return_when="FIRST_COMPLETED").done
                except TimeoutError:  # none finished yet: look at the cancel event again
                    continue
                for fut in finished:
                    pending.discard(fut)
                    merged = self._merge(fut)
                    if merged is not None:
                        self.indexed += merged[0]
                        skipped += merged[1]
                        n = self.indexed - self.leftover.encoded + skipped
                        self._report(n, len(jobs), n / max(time.perf_counter() - started, 1e-9), self.done[-1].name,
                                     skipped)
        finally:
            if pending:
                self.client.cancel(list(pending))

    def _merge(self, fut) -> tuple[int, int] | None:
        """Merge the shard of a finished task: (encoded, skipped), or None when it failed (its photos are left to
        the next run)."""
        name = fut.key.removeprefix("sfe-shard-")
        if fut.status != "finished":
            self.failures.append(f"{name}: {fut.exception()!r}"[:300])
            return None
        done: ShardDone = fut.result()
        try:
            shard = shards.read_shard(Path(done.path), self.state.format.meta())
        except ValueError as exc:
            self.failures.append(str(exc))
            return None
        self.done.append(done)
        e, s, _ = shards.merge_shard(self.state, shard)
        return e, s

    def run(self, reencode: bool) -> IndexSummary:
        summary = super().run(reencode)
        if self.failures:
            raise SFEError(f"{len(self.failures)} shards failed (the first: {self.failures[0]}); what finished is "
                           "merged: run the same command again to retry the rest")
        return summary


def _parse_local(cluster: str) -> int | None:
    if not cluster.startswith("local:"):
        return None
    try:
        n = int(cluster[len("local:"):])
    except ValueError:
        n = 0
    if n < 1:
        raise SFEError(f"--cluster {cluster!r}: give local:N with N workers (N >= 1), or a scheduler address")
    return n


@contextmanager
def connect(cluster) -> Iterator[tuple[object, int | None]]:
    """A Dask client for ``cluster``: an existing ``distributed.Client``, ``"local:N"`` (a cluster of N worker
    processes on this machine, closed at the end) or a scheduler address (``tcp://host:8786``). Yields (client,
    workers on this machine or None)."""
    distributed = _dask()
    if not isinstance(cluster, str):
        yield cluster, None
        return
    n = _parse_local(cluster)
    if n is None:
        try:
            client = distributed.Client(cluster, timeout=30)
        except (OSError, TimeoutError) as exc:
            raise SFEError(f"cannot reach the Dask scheduler at {cluster!r} ({exc})") from exc
        with client:
            yield client, None
        return
    with distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0") as lc:
        with distributed.Client(lc) as client:
            yield client, n


def index_on_cluster(state: IndexState, runtime: SFERuntime, cluster, model: WorkerModel | None = None, *,
                     shard_size: int = DEFAULT_SHARD_SIZE, shard_dir: str | os.PathLike | None = None,
                     batch_size: int = 8, decode_threads: int = 2,
                     progress: Callable[[IndexProgress], None] | None = None, cancel: threading.Event | None = None,
                     reencode: bool = False) -> tuple[IndexSummary, list[ShardDone]]:
    """Index ``state``'s photo folder on ``cluster`` (see :func:`connect`): the summary, and what each shard's
    worker reported (photos and seconds, for throughput per worker). ``model``: how the workers load the model
    (default: the checkpoint ``runtime`` was loaded from). ``shard_dir``: where workers write shards (default
    ``<index_dir>/shards``; it must be shared with the workers)."""
    if model is None:
        model = WorkerModel(str(runtime.source) if runtime.source else None, "cpu")
    root = Path(shard_dir) if shard_dir is not None else state.index_dir / shards.SHARDS_DIR
    with state.writing(), connect(cluster) as (client, local_workers):  # the lock first: no cluster started in vain
        if local_workers and model.torch_threads is None:  # N workers on this machine share its cores
            model = WorkerModel(model.checkpoint, model.device, model.factory, model.key,
                                max(1, (os.cpu_count() or 1) // local_workers))
        indexer = ClusterIndexer(state, runtime, client, model, root, shard_size, batch_size, decode_threads,
                                 progress, cancel)
        return indexer.run(reencode), indexer.done
