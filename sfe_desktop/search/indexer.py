"""One index run: scan, plan (unchanged / renamed / new / gone), then decode in a thread pool while
the model encodes the previous batch, handing each batch to the :class:`~sfe_desktop.search.state.IndexState`,
which stores it crash-safely (the rules are written there)."""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

import torch

from ..catalog import FileRow, ScanEntry, content_hash, scan
from ..catalog.db import OK, SKIPPED
from ..catalog.metadata import probe
from ..data.images import load_image
from ..errors import ImageReadError
from ..model.runtime import SFERuntime
from .captions import sidecar_captions
from .state import IndexState
from .types import IndexProgress, IndexSummary

log = logging.getLogger(__name__)

RETRY_REASONS = ("permission denied", "cannot read")


@dataclass
class _Job:
    entry: ScanEntry
    hash: str
    old_id: int | None  # catalog row replaced by this file (changed content)


@dataclass
class _Decoded:
    job: _Job
    tensor: torch.Tensor | None
    width: int | None = None
    height: int | None = None
    date_taken: str | None = None
    error: str | None = None


def _skip_row(entry: ScanEntry, reason: str, hash_: str | None = None) -> FileRow:
    return FileRow(None, entry.rel, entry.size, entry.mtime_ns, hash_, None, None, None, SKIPPED, reason, None)


class Indexer:
    """Runs one index run of ``state`` with ``runtime`` (the caller holds ``state.writing()``); holds no state
    between runs.

    Parameters
    ----------
    batch_size, workers
        Images per model batch and decoding threads.
    """

    def __init__(self, state: IndexState, runtime: SFERuntime, batch_size: int, workers: int,
                 progress: Callable[[IndexProgress], None] | None = None, cancel: threading.Event | None = None):
        self.state = state
        self.runtime = runtime
        self.catalog = state.catalog
        self.batch_size = batch_size
        self.workers = workers
        self.progress = progress
        self.cancel = cancel or threading.Event()

    # -- planning --------------------------------------------------------------------------------
    def _plan(self, pool: ThreadPoolExecutor):
        state, catalog = self.state, self.catalog
        existing = catalog.files()
        entries = list(scan(state.photo_dir, skip=[state.index_dir]))
        seen = {e.rel for e in entries}
        upserts: list[FileRow] = []
        deletes: set[int] = {r.id for p, r in existing.items() if p not in seen}
        to_hash: list[tuple[ScanEntry, FileRow | None]] = []
        unchanged = 0
        for e in entries:
            old = existing.get(e.rel)
            if e.error:
                if old is None or old.status != SKIPPED or old.reason != e.error:
                    if old is not None:
                        deletes.add(old.id)
                    upserts.append(_skip_row(e, e.error))
            elif old is not None and old.size == e.size and old.mtime_ns == e.mtime_ns and not (
                    old.status == SKIPPED and (old.reason or "").endswith(RETRY_REASONS)):
                unchanged += old.status == OK
                continue
            elif e.size == 0:
                if old is None or old.reason != "empty file":
                    if old is not None:
                        deletes.add(old.id)
                    upserts.append(_skip_row(e, "empty file"))
            else:
                to_hash.append((e, old))

        def hash_one(item):
            e, _ = item
            try:
                return content_hash(state.abs_path(e.rel), e.size), None
            except OSError as exc:
                return None, f"cannot read ({exc.strerror or type(exc).__name__})"

        by_hash: dict[str, FileRow] = {}
        for r in existing.values():
            if r.status == OK and r.hash:
                by_hash.setdefault(r.hash, r)
        claimed: set[int] = set()
        jobs: list[_Job] = []
        reused = 0
        for (e, old), (h, err) in zip(to_hash, pool.map(hash_one, to_hash)):
            if err:
                if old is not None:
                    deletes.add(old.id)
                upserts.append(_skip_row(e, err))
                continue
            match = by_hash.get(h)
            if old is not None and old.status == OK and old.hash == h:  # touched, same content
                upserts.append(replace(old, size=e.size, mtime_ns=e.mtime_ns))
                reused += 1
            elif match is not None and match.id in deletes and match.id not in claimed:  # moved / renamed
                claimed.add(match.id)
                deletes.discard(match.id)
                if old is not None:
                    deletes.add(old.id)
                upserts.append(replace(match, path=e.rel, size=e.size, mtime_ns=e.mtime_ns))
                reused += 1
            elif match is not None and match.id not in deletes:  # a copy of an indexed photo
                if old is not None:
                    deletes.add(old.id)
                upserts.append(replace(match, id=None, path=e.rel, size=e.size, mtime_ns=e.mtime_ns))
                reused += 1
            else:
                jobs.append(_Job(e, h, old.id if old is not None else None))
        # a file that replaced another's path keeps no stale row: delete before re-inserting by path
        return len(entries), upserts, deletes, jobs, reused, unchanged

    # -- decoding --------------------------------------------------------------------------------
    def _decode(self, job: _Job) -> _Decoded:
        path = self.state.abs_path(job.entry.rel)
        try:
            image = load_image(path, min_side=max(self.runtime.image_size, self.state.thumbs.size))
            tensor = self.runtime.preprocess(image)
            width, height, date = probe(path)
            try:
                self.state.thumbs.put(job.hash, image)
            except OSError as exc:
                log.warning("cannot write thumbnail for %s: %s", path, exc)
            return _Decoded(job, tensor, width or image.width, height or image.height, date)
        except ImageReadError as exc:
            msg = str(exc)
            name = os.path.basename(path)
            return _Decoded(job, None, error=msg[len(name) + 2:] if msg.startswith(name + ": ") else msg)
        except Exception as exc:  # noqa: BLE001 - bad input must never stop a run
            log.exception("unexpected error decoding %s", path)
            return _Decoded(job, None, error=f"cannot decode ({type(exc).__name__}: {exc})")

    def _commit_batch(self, decoded: list[_Decoded]) -> tuple[int, int]:
        good = [d for d in decoded if d.tensor is not None]
        encoded: list[FileRow] = []
        feats = None
        if good:
            with torch.inference_mode():
                feats = self.runtime.encode_images(torch.stack([d.tensor for d in good]))
            for d in good:
                e = d.job.entry
                encoded.append(FileRow(None, e.rel, e.size, e.mtime_ns, d.job.hash, d.width, d.height, d.date_taken,
                                       OK, None, None))
        skipped = [_skip_row(d.job.entry, d.error or "cannot decode", d.job.hash) for d in decoded if d.tensor is None]
        deletes = [d.job.old_id for d in decoded if d.job.old_id is not None]
        self.state.append(encoded, feats, skipped, deletes)
        self._add_sidecars([d.job.entry.rel for d in good])
        return len(good), len(decoded) - len(good)

    def _add_sidecars(self, rels: list[bytes]) -> None:
        for rel in rels:
            texts = sidecar_captions(self.state.abs_path(rel))
            if texts:
                self.state.add_captions(texts, "sidecar:" + rel.decode("utf-8", "backslashreplace"))

    # -- the run ---------------------------------------------------------------------------------
    def run(self, reencode: bool) -> IndexSummary:
        state = self.state
        start = time.perf_counter()
        state.begin_run(reencode)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="sfe-decode") as pool:
            total, upserts, deletes, jobs, reused, unchanged = self._plan(pool)
            state.commit_files(upserts, deletes)
            removed = len(deletes)
            state.sync_vectors()
            cancelled = self._encode(pool, jobs)
        compacted = state.finish_run()
        counts = self.catalog.counts()
        summary = IndexSummary(indexed=self.indexed, reused=reused, removed=removed,
                               skipped=counts.get(SKIPPED, 0), total=total, cancelled=cancelled,
                               compacted=compacted, searchable=counts.get(OK, 0), unchanged=unchanged,
                               seconds=time.perf_counter() - start)
        log.info("index run: %s", summary)
        return summary

    def _encode(self, pool: ThreadPoolExecutor, jobs: list[_Job]) -> bool:
        bs = self.batch_size
        self.indexed = 0
        skipped = 0
        started = time.perf_counter()
        pending: deque[Future] = deque()
        queue = iter(jobs)

        def fill() -> None:
            while len(pending) < 2 * bs:
                job = next(queue, None)
                if job is None:
                    return
                pending.append(pool.submit(self._decode, job))

        self._report(0, len(jobs), 0.0, "", 0)
        fill()
        try:
            while pending:
                if self.cancel.is_set():
                    return True
                batch = [pending.popleft().result() for _ in range(min(bs, len(pending)))]
                fill()  # decode the next batch while this one is encoded
                ok, bad = self._commit_batch(batch)
                self.indexed += ok
                skipped += bad
                done = self.indexed + skipped
                rate = done / max(time.perf_counter() - started, 1e-9)
                self._report(done, len(jobs), rate, batch[-1].job.entry.rel.decode("utf-8", "replace"), skipped)
            return False
        finally:
            for f in pending:
                f.cancel()

    def _report(self, done: int, total: int, rate: float, current: str, skipped: int) -> None:
        if self.progress is not None:
            self.progress(IndexProgress(done, total, rate, current, skipped))
