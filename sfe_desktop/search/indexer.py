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
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..catalog import FileRow, ScanEntry, content_hash, scan
from ..catalog.scanner import read_reason
from ..catalog.db import OK, SKIPPED
from ..catalog.metadata import probe
from ..data.gpu_decode import GPUDecoder, exif_orientation, gpu_decoder, is_jpeg
from ..data.images import MAX_FILE_BYTES, MAX_PIXELS, load_image, open_image_file
from ..errors import ImageReadError
from ..model.runtime import SFERuntime
from .captions import sidecar_captions, sidecar_state
from .state import IndexState
from .types import IndexProgress, IndexSummary

log = logging.getLogger(__name__)

RACY_NS = 2_000_000_000  # a file modified this close before the last scan may have changed unseen: hash it again


def retryable(reason: str | None) -> bool:
    """A skip reason that can go away without the file changing (a chmod): such files are tried on every run."""
    return reason is not None and (reason == "permission denied" or reason.startswith("cannot read"))


def _sidecar_source(rel: bytes) -> str:
    return "sidecar:" + rel.decode("utf-8", "backslashreplace")


@dataclass
class _Job:
    entry: ScanEntry
    hash: str


@dataclass
class _Decoded:
    job: _Job
    tensor: torch.Tensor | None
    width: int | None = None
    height: int | None = None
    date_taken: str | None = None
    error: str | None = None


@dataclass
class _Raw:
    """A JPEG read by a CPU thread, for the GPU to decode."""

    job: _Job
    data: bytes
    orientation: int
    width: int | None
    height: int | None
    date_taken: str | None


@dataclass
class _Plan:
    """What a run changes before encoding, committed in one transaction."""

    total: int
    scan_ns: int
    upserts: list[FileRow] = field(default_factory=list)
    deletes: set[int] = field(default_factory=set)
    jobs: list[_Job] = field(default_factory=list)
    reused: int = 0
    removed: int = 0
    unchanged: int = 0  # indexed photos found as they were
    captions_remove: set[str] = field(default_factory=set)
    captions_add: list[tuple[str, str]] = field(default_factory=list)


def _skip_row(entry: ScanEntry, reason: str, hash_: str | None = None) -> FileRow:
    return FileRow(None, entry.rel, entry.size, entry.mtime_ns, hash_, None, None, None, SKIPPED, reason, None,
                   entry.ino)


def _unchanged(old: FileRow, e: ScanEntry, racy_before: float) -> bool:
    """The file at ``old.path`` is the one indexed: same size, mtime and inode (a rename or swap changes the inode
    where size and mtime stay), not modified around the last scan, not a skip that a chmod can undo."""
    return (old.size == e.size and old.mtime_ns == e.mtime_ns and (old.ino is None or old.ino == e.ino)
            and old.mtime_ns < racy_before and not (old.status == SKIPPED and retryable(old.reason)))


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
        self.batch_size = batch_size
        self.workers = workers
        self.progress = progress
        self.cancel = cancel or threading.Event()

    @property
    def catalog(self):
        return self.state.catalog  # the state may replace a damaged catalog at the start of a run

    # -- planning --------------------------------------------------------------------------------
    def _plan(self, pool: ThreadPoolExecutor) -> _Plan:
        """Compare the folder with the catalog. Content is matched by hash across every path that lost its
        photo (gone, changed, now unreadable): any permutation of names (swaps, rotations, moves into and out of
        folders) re-points rows to their content; content still in place lends its vectors to copies; the rest is
        encoded."""
        state, catalog = self.state, self.catalog
        existing = catalog.files()
        last_scan = catalog.meta().get("scan_ns")
        racy_before = int(last_scan) - RACY_NS if (last_scan or "").isdigit() else float("inf")
        plan = _Plan(0, time.time_ns())
        entries = list(scan(state.photo_dir, skip=[state.index_dir]))
        plan.total = len(entries)
        seen = {e.rel for e in entries}
        released = [r for p, r in existing.items() if p not in seen]  # rows whose photo left their path
        vanished = {r.id for r in released}
        in_place: dict[str, FileRow] = {}  # content that stays where it is (copies may share its vectors)
        to_hash: list[tuple[ScanEntry, FileRow | None]] = []
        for e in entries:
            old = existing.get(e.rel)
            if e.error or e.size == 0:
                reason = e.error or "empty file"
                if old is None or old.status != SKIPPED or old.reason != reason:
                    released += [old] if old is not None else []
                    plan.upserts.append(_skip_row(e, reason))
                elif (old.size, old.mtime_ns, old.ino) != (e.size, e.mtime_ns, e.ino):  # touched, still skipped
                    plan.upserts.append(replace(old, size=e.size, mtime_ns=e.mtime_ns, ino=e.ino))
            elif old is not None and _unchanged(old, e, racy_before):
                sidecar = self._sidecar_news(plan, old, e.rel)
                if old.ino is None or sidecar != old.sidecar:  # an inode not recorded yet, a new sidecar
                    plan.upserts.append(replace(old, ino=e.ino, sidecar=sidecar))
                if old.status == OK:
                    in_place.setdefault(old.hash, old)
                    plan.unchanged += 1
            else:
                to_hash.append((e, old))

        def hash_one(item):
            e, _ = item
            try:
                return content_hash(state.abs_path(e.rel), e.size), None
            except OSError as exc:
                return None, read_reason(exc)

        changed: list[tuple[ScanEntry, str]] = []
        for (e, old), (h, err) in zip(to_hash, pool.map(hash_one, to_hash)):
            if old is not None and old.status == OK and old.hash == h:  # touched (or checked again), same content
                sidecar = self._sidecar_news(plan, old, e.rel)
                same_photo = (old.size, old.mtime_ns, old.ino) == (e.size, e.mtime_ns, e.ino)
                if not same_photo or old.sidecar != sidecar:
                    plan.upserts.append(replace(old, size=e.size, mtime_ns=e.mtime_ns, ino=e.ino, sidecar=sidecar))
                plan.reused += not same_photo
                plan.unchanged += same_photo  # modified around the last scan, checked again: as it was
                in_place.setdefault(h, old)
                continue
            released += [old] if old is not None else []
            plan.captions_remove.add(_sidecar_source(e.rel))
            if err:
                plan.upserts.append(_skip_row(e, err))
            else:
                changed.append((e, h))

        donors: dict[str, list[FileRow]] = {}  # indexed content that left its path, by hash
        for r in sorted(released, key=lambda r: r.id, reverse=True):
            plan.captions_remove.add(_sidecar_source(r.path))
            if r.status == OK and r.hash:
                donors.setdefault(r.hash, []).append(r)
        claimed: set[int] = set()
        for e, h in changed:
            moved = donors.get(h)
            sidecar = sidecar_state(state.abs_path(e.rel))
            if moved:  # renamed, moved, swapped: the row follows its content
                row = replace(moved.pop(), path=e.rel, size=e.size, mtime_ns=e.mtime_ns, ino=e.ino, sidecar=sidecar)
                claimed.add(row.id)
            elif h in in_place:  # a copy: a new row sharing the vectors
                row = replace(in_place[h], id=None, path=e.rel, size=e.size, mtime_ns=e.mtime_ns, ino=e.ino,
                              sidecar=sidecar)
            else:
                plan.jobs.append(_Job(e, h))
                continue
            in_place.setdefault(h, row)
            plan.upserts.append(row)
            plan.reused += 1
            self._reread_sidecar(plan, e.rel)
        plan.deletes = {r.id for r in released if r.id not in claimed}
        plan.removed = len(vanished - claimed)
        return plan

    def _sidecar_news(self, plan: _Plan, old: FileRow, rel: bytes) -> str | None:
        """The sidecar state of the indexed photo ``old`` at ``rel``; its captions are read again when it changed
        (a sidecar added, edited or removed while the photo stayed as it was)."""
        if old.status != OK:
            return old.sidecar
        sidecar = sidecar_state(self.state.abs_path(rel))
        if sidecar != old.sidecar:
            self._reread_sidecar(plan, rel)
        return sidecar

    def _reread_sidecar(self, plan: _Plan, rel: bytes) -> None:
        """Replace the captions of the photo at ``rel`` by what its sidecar holds now."""
        source = _sidecar_source(rel)
        plan.captions_remove.add(source)
        plan.captions_add += [(t, source) for t in sidecar_captions(self.state.abs_path(rel))]

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

    def _read(self, job: _Job) -> _Raw | _Decoded:
        """GPU decoding, the CPU side: a JPEG's bytes and metadata; anything else decoded here as without a GPU."""
        path = self.state.abs_path(job.entry.rel)
        try:
            with open_image_file(path) as f:
                data = f.read(MAX_FILE_BYTES + 1)
        except ImageReadError:
            return self._decode(job)  # says why
        width, height, date = probe(path)
        if not is_jpeg(data) or width is None or height is None or width * height > MAX_PIXELS:
            return self._decode(job)
        return _Raw(job, data, exif_orientation(data), width, height, date)

    def _gpu_batch(self, gpu: GPUDecoder, pool: ThreadPoolExecutor, items: list[_Raw | _Decoded]) -> list[_Decoded]:
        """The JPEGs of ``items`` decoded on the GPU in one call, thumbnails written by the CPU threads; a photo
        nvjpeg cannot decode goes the CPU way."""
        raws = [r for r in items if isinstance(r, _Raw)]
        images = iter(gpu.decode([r.data for r in raws], [r.orientation for r in raws]))
        out = []
        for item in items:
            if isinstance(item, _Decoded):
                out.append(item)
                continue
            image = next(images)
            if image is None:
                out.append(self._decode(item.job))
                continue
            pool.submit(self._put_thumb, item.job.hash, image.thumb)
            out.append(_Decoded(item.job, image.tensor, item.width or image.width, item.height or image.height,
                                item.date_taken))
        return out

    def _put_thumb(self, key: str, pixels: np.ndarray) -> None:
        from PIL import Image

        try:
            self.state.thumbs.put(key, Image.fromarray(pixels))
        except OSError as exc:
            log.warning("cannot write thumbnail %s: %s", key, exc)

    def _commit_batch(self, decoded: list[_Decoded]) -> tuple[int, int]:
        good = [d for d in decoded if d.tensor is not None]
        encoded: list[FileRow] = []
        feats = None
        if good:
            device = self.runtime.device
            with torch.inference_mode():
                feats = self.runtime.encode_images(torch.stack([d.tensor.to(device) for d in good]))
            finite = np.isfinite(feats.global_).all(1) & np.isfinite(feats.patches).all((1, 2))
            if not finite.all():  # never store a vector that searches cannot rank
                for d in (d for d, ok in zip(good, finite) if not ok):
                    d.tensor, d.error = None, "the model gave non-finite features"
                good, feats = [d for d in good if d.tensor is not None], feats[np.flatnonzero(finite)]
            for d in good:
                e = d.job.entry
                encoded.append(FileRow(None, e.rel, e.size, e.mtime_ns, d.job.hash, d.width, d.height, d.date_taken,
                                       OK, None, None, e.ino, sidecar_state(self.state.abs_path(e.rel))))
        skipped = [_skip_row(d.job.entry, d.error or "cannot decode", d.job.hash) for d in decoded if d.tensor is None]
        captions = [(t, _sidecar_source(d.job.entry.rel)) for d in good
                    for t in sidecar_captions(self.state.abs_path(d.job.entry.rel))]
        if encoded:
            self.state.append(encoded, feats, skipped, captions_add=captions)
        else:  # nothing of this batch could be encoded: only its skipped files are recorded
            self.state.commit_files(skipped, ())
        return len(good), len(decoded) - len(good)

    # -- the run ---------------------------------------------------------------------------------
    def run(self, reencode: bool) -> IndexSummary:
        state = self.state
        start = time.perf_counter()
        state.begin_run(reencode)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="sfe-decode") as pool:
            plan = self._plan(pool)
            state.commit_files(plan.upserts, plan.deletes, {"scan_ns": plan.scan_ns}, plan.captions_add,
                               plan.captions_remove)
            state.sync_vectors()
            cancelled = self._encode(pool, plan.jobs)
        compacted = state.finish_run()
        counts = self.catalog.counts()
        summary = IndexSummary(indexed=self.indexed, reused=plan.reused, removed=plan.removed,
                               skipped=counts.get(SKIPPED, 0), total=plan.total, cancelled=cancelled,
                               compacted=compacted, searchable=counts.get(OK, 0), unchanged=plan.unchanged,
                               seconds=time.perf_counter() - start)
        log.info("index run: %s", summary)
        return summary

    def encode_files(self, files: list[tuple[ScanEntry, str]]) -> bool:
        """Decode and encode ``files`` ((scan entry, content hash) pairs) into ``self.state`` with this run's
        decode/encode pipeline, without scanning or planning: what a cluster worker runs on its shard
        (:mod:`sfe_desktop.search.cluster`). True when cancelled."""
        self.indexed = 0
        with ThreadPoolExecutor(self.workers, thread_name_prefix="sfe-decode") as pool:
            return self._encode(pool, [_Job(e, h) for e, h in files])

    def _encode(self, pool: ThreadPoolExecutor, jobs: list[_Job]) -> bool:
        bs = self.batch_size
        self.indexed = 0
        skipped = 0
        started = time.perf_counter()
        pending: deque[Future] = deque()
        queue = iter(jobs)
        gpu = None
        if jobs and self.runtime.device.type == "cuda":
            gpu = gpu_decoder(self.runtime.device, self.runtime.image_size, self.runtime.model.image.normalise,
                              self.state.thumbs.size)
        work = self._read if gpu is not None else self._decode

        def fill() -> None:
            while len(pending) < 2 * bs:
                job = next(queue, None)
                if job is None:
                    return
                pending.append(pool.submit(work, job))

        self._report(0, len(jobs), 0.0, "", 0)
        fill()
        try:
            while pending:
                if self.cancel.is_set():
                    return True
                batch = [pending.popleft().result() for _ in range(min(bs, len(pending)))]
                fill()  # decode (or read, for the GPU) the next batch while this one is encoded
                if gpu is not None:
                    batch = self._gpu_batch(gpu, pool, batch)
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
