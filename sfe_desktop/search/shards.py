"""Shards: the rows one cluster worker encoded, in a folder of their own, and their merge into a collection's index.

A shard folder (``<index_dir>/shards/<name>/``, or any folder every worker can write) holds

* ``global.npy`` (float32, one index vector per encoded photo) and ``patches.npy`` (float16 patch features), rows
  in the order of the manifest's encoded files: the model's output (:class:`~sfe_desktop.model.features.
  ImageFeatures`), not the index's storage format, so a shard does not depend on how the row files store it;
* ``thumbs/`` (thumbnails named by content hash, as the index keeps them);
* ``manifest.json``, written last: the model's format, and for every file of the shard its path, size, mtime,
  inode, content hash, size in pixels, date taken, status (ok or skipped, with the reason), sidecar state, its row
  in the arrays, and the captions of its sidecar.

**Atomic.** A worker writes everything into ``.tmp-<name>-<token>/``, flushes it to disk and renames the folder to
``<name>``: a folder whose name starts with a dot is never read (a worker killed half-way leaves one; the next merge
deletes it), and a named folder that does not read back whole (missing manifest, short arrays) is logged, deleted and
its photos encoded again by the next run.

**Idempotent merge.** :func:`merge_shards` appends each shard in one catalog transaction
(:meth:`IndexState.append`), then renames the folder to ``.merged-<name>`` and deletes it. A file is taken only when
it is on disk as the worker read it (size and mtime) and the catalog does not hold it already as it is, so merging a
shard again (a crash between the commit and the delete) changes nothing, and a photo changed since it was encoded is
left to the next run.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..catalog import FileRow
from ..catalog.db import OK
from ..index import ThumbnailCache
from ..index.atomic import atomic_write, fsync_dir
from ..model.features import ImageFeatures, split_index_vectors
from .state import IndexState

log = logging.getLogger(__name__)

SHARDS_DIR = "shards"
MANIFEST = "manifest.json"
VERSION = 1
_GLOBAL, _PATCHES = "global.npy", "patches.npy"


def _path_text(rel: bytes) -> str:
    return rel.decode("utf-8", "surrogateescape")  # exact: any byte survives the round trip through JSON


def _path_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


class ShardWriter:
    """What a worker's :class:`~sfe_desktop.search.indexer.Indexer` writes into instead of an index folder: it
    offers the few methods of :class:`IndexState` that encoding calls (``abs_path``, ``thumbs``, ``append``,
    ``commit_files``) and keeps the rows in memory until :meth:`finish` writes the shard."""

    def __init__(self, photo_dir: str | os.PathLike, root: str | os.PathLike, name: str, fmt_meta: dict):
        self.photo_dir_b = os.fsencode(os.fspath(photo_dir))
        self.root = Path(root)
        self.name = name
        self.fmt_meta = fmt_meta
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp = self.root / f".tmp-{name}-{secrets.token_hex(4)}"
        self.tmp.mkdir()
        self.thumbs = ThumbnailCache(self.tmp / "thumbs")
        self.rows: list[FileRow] = []
        self.captions: list[tuple[str, str]] = []
        self._vectors: list[np.ndarray] = []
        self._patches: list[np.ndarray] = []

    def abs_path(self, rel: bytes) -> str:
        return os.fsdecode(os.path.join(self.photo_dir_b, rel))

    def append(self, encoded: list[FileRow], features: ImageFeatures, others: list[FileRow] = (), deletes=(),
               captions_add: list[tuple[str, str]] = ()) -> None:
        start = sum(len(v) for v in self._vectors)
        self.rows += [replace(r, vec_row=start + i) for i, r in enumerate(encoded)] + list(others)
        self._vectors.append(np.ascontiguousarray(features.index_vectors(), np.float32))
        self._patches.append(np.ascontiguousarray(features.patches, np.float16))
        self.captions += list(captions_add)

    def commit_files(self, upserts: list[FileRow], deletes=(), meta=None, captions_add=(), captions_remove=()) -> None:
        self.rows += list(upserts)
        self.captions += list(captions_add)

    def finish(self) -> Path:
        """Write the shard and rename it into place; its final path. A shard of that name written already (the
        same task run twice) is kept and this copy dropped."""
        vdim, dim = int(self.fmt_meta["vector_dim"]), int(self.fmt_meta["dim"])
        n_patches = int(np.prod([int(x) for x in str(self.fmt_meta["grid"]).split("x")]))
        vectors = np.concatenate(self._vectors) if self._vectors else np.zeros((0, vdim), np.float32)
        patches = np.concatenate(self._patches) if self._patches else np.zeros((0, n_patches, dim), np.float16)
        for name, array in ((_GLOBAL, vectors), (_PATCHES, patches)):
            with open(self.tmp / name, "wb") as f:
                np.save(f, array)
                f.flush()
                os.fsync(f.fileno())
        manifest = {"version": VERSION, "name": self.name, "format": self.fmt_meta, "encoded": len(vectors),
                    "files": [{**asdict(r), "path": _path_text(r.path), "id": None} for r in self.rows],
                    "captions": self.captions}
        with open(self.tmp / MANIFEST, "w", encoding="utf-8") as f:
            json.dump(manifest, f)
            f.flush()
            os.fsync(f.fileno())
        fsync_dir(self.tmp)
        target = self.root / self.name
        try:
            os.rename(self.tmp, target)
        except OSError:
            if not (target / MANIFEST).is_file():
                raise
            log.info("shard %s was written already; this copy is dropped", self.name)
            self.discard()
            return target
        fsync_dir(self.root)
        return target

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


@dataclass
class Shard:
    """A finished shard read back: its rows and arrays (memory-mapped)."""

    path: Path
    rows: list[FileRow]
    vectors: np.ndarray
    patches: np.ndarray
    captions: list[tuple[str, str]]


@dataclass
class MergeSummary:
    """What :func:`merge_shards` did: shards merged, files taken (encoded and skipped), files left to the next
    run (changed or gone since they were encoded, or merged already), shards found broken and deleted."""

    shards: int = 0
    encoded: int = 0
    skipped: int = 0
    left: int = 0
    broken: list[str] = field(default_factory=list)


def finished(root: str | os.PathLike) -> list[Path]:
    """The shard folders in ``root`` that a worker finished (renamed into place), by name."""
    try:
        return sorted(p for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def read_shard(path: Path, fmt_meta: dict) -> Shard:
    """Read a finished shard; ValueError (one line) when it is not whole or was made by another model."""
    try:
        with open(path / MANIFEST, encoding="utf-8") as f:
            manifest = json.load(f)
        if manifest.get("version") != VERSION:
            raise ValueError(f"manifest version {manifest.get('version')!r}")
        if {k: str(v) for k, v in manifest["format"].items()} != {k: str(v) for k, v in fmt_meta.items()}:
            raise ValueError(f"made by another model ({manifest['format'].get('checkpoint_id')})")
        vectors = np.load(path / _GLOBAL, mmap_mode="r")
        patches = np.load(path / _PATCHES, mmap_mode="r")
        rows = [FileRow(**{**r, "path": _path_bytes(r["path"])}) for r in manifest["files"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"shard {path.name} cannot be read ({type(exc).__name__}: {exc})") from exc
    n = int(manifest["encoded"])
    ok_rows = sorted(r.vec_row for r in rows if r.status == OK)
    if len(vectors) != n or len(patches) != n or ok_rows != list(range(n)):
        raise ValueError(f"shard {path.name} is not whole ({len(vectors)} vectors, {len(patches)} patch rows, "
                         f"{n} in its manifest)")
    return Shard(path, rows, vectors, patches, [tuple(c) for c in manifest["captions"]])


def _same(old: FileRow, new: FileRow) -> bool:
    return (old.status, old.size, old.mtime_ns, old.hash, old.reason) == (new.status, new.size, new.mtime_ns,
                                                                         new.hash, new.reason)


def merge_shard(state: IndexState, shard: Shard) -> tuple[int, int, int]:
    """Append one shard's files to the index (one transaction), then delete the shard; (encoded, skipped, left).
    Call inside ``state.writing()``."""
    encoded, skipped, left, keep = [], [], 0, []
    for row in shard.rows:
        try:
            st = os.stat(state.abs_path(row.path))
        except OSError:
            left += 1  # gone since it was encoded: the next run notices
            continue
        if (st.st_size, st.st_mtime_ns) != (row.size, row.mtime_ns):
            left += 1  # changed since: the next run encodes it again
            continue
        old = state.catalog.by_path(row.path)
        if old is not None and _same(old, row):
            left += 1  # merged already
            continue
        if row.status == OK:
            keep.append(row.vec_row)
            encoded.append(replace(row, id=None, vec_row=None))
        else:
            skipped.append(replace(row, id=None, vec_row=None))
    for thumb in (shard.path / "thumbs").glob("*/*.jpg"):  # thumbnails first: a row never lacks its thumbnail
        target = state.thumbs.path_for(thumb.stem)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(thumb, target)
            except OSError:  # the shard folder is on another file system: a copy, renamed into place
                atomic_write(target, lambda tmp, src=thumb: shutil.copyfile(src, tmp), fsync=False)
    sources = {"sidecar:" + r.display for r in encoded}
    captions = [c for c in shard.captions if c[1] in sources]
    if encoded:
        g, bridge, hub = split_index_vectors(np.asarray(shard.vectors[keep]), state.format.dim)
        state.append(encoded, ImageFeatures(g, np.asarray(shard.patches[keep]), bridge, hub=hub), skipped,
                     captions_add=captions)
    elif skipped:
        state.commit_files(skipped, ())
    _remove(shard.path)
    return len(encoded), len(skipped), left


def _remove(path: Path) -> None:
    """Delete a shard folder: renamed first (one step), so that a delete cut short leaves a dot-folder, not a shard
    with half its files."""
    gone = path.with_name(f".merged-{path.name}-{secrets.token_hex(4)}")
    os.rename(path, gone)
    shutil.rmtree(gone, ignore_errors=True)


def clean(root: str | os.PathLike) -> None:
    """Delete the dot-folders of ``root``: shards a worker did not finish, merged shards not yet deleted. Only the
    process that holds the index folder's lock calls this (no run of its own is writing shards then)."""
    try:
        leftovers = [p for p in Path(root).iterdir() if p.is_dir() and p.name.startswith(".")]
    except OSError:
        return
    for p in leftovers:
        log.info("deleting the unfinished shard folder %s", p)
        shutil.rmtree(p, ignore_errors=True)


def merge_shards(state: IndexState, root: str | os.PathLike | None = None) -> MergeSummary:
    """Merge every finished shard in ``root`` (default ``<index_dir>/shards``) into the index, delete broken ones
    and unfinished ones; call inside ``state.writing()`` on an index that is not stale."""
    root = Path(root) if root is not None else state.index_dir / SHARDS_DIR
    summary = MergeSummary()
    clean(root)
    fmt = state.format.meta()
    for path in finished(root):
        try:
            shard = read_shard(path, fmt)
        except ValueError as exc:
            log.warning("%s: deleted, its photos are encoded again", exc)
            summary.broken.append(str(exc))
            _remove(path)
            continue
        e, s, left = merge_shard(state, shard)
        summary.shards += 1
        summary.encoded += e
        summary.skipped += s
        summary.left += left
    if summary.shards:
        log.info("merged %d shards: %d files encoded, %d skipped, %d left to the next run", summary.shards,
                 summary.encoded, summary.skipped, summary.left)
    return summary
