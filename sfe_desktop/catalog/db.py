"""SQLite catalog (WAL mode) of the files of one collection.

The schema version lives in ``PRAGMA user_version``; :data:`MIGRATIONS` holds one step per version
and :meth:`Catalog.open` applies the missing ones in order. Paths are stored as bytes relative to
the photo folder (exact, even when not UTF-8) with a UTF-8 display copy.

Every SQLite error leaves as an :class:`~sfe_desktop.errors.IndexStateError` naming the catalog;
:class:`~sfe_desktop.errors.IndexDamagedError` when the file is damaged (SQLite says so, or :meth:`Catalog.check`
finds values no run writes). Commits are durable (``synchronous=FULL``): a row of the catalog never points at
vectors that a power loss could take back.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from ..data.files import size_text
from ..errors import IndexDamagedError, IndexStateError

log = logging.getLogger(__name__)

MIGRATIONS: list[str] = [
    # version 1
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE files (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        path BLOB NOT NULL UNIQUE,
        display TEXT NOT NULL,
        size INTEGER NOT NULL DEFAULT 0,
        mtime_ns INTEGER NOT NULL DEFAULT 0,
        hash TEXT,
        width INTEGER,
        height INTEGER,
        date_taken TEXT,
        status TEXT NOT NULL,
        reason TEXT,
        vec_row INTEGER
    );
    CREATE INDEX files_hash ON files(hash);
    """,
    # version 2: user captions (CSV/text files and sidecar descriptions)
    """
    CREATE TABLE captions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        text TEXT NOT NULL,
        source TEXT NOT NULL,
        UNIQUE (text, source)
    );
    """,
    # version 3: the inode (a rename or a swap changes it where size and mtime stay), and an index that makes
    # the check of shared vector rows cheap
    """
    ALTER TABLE files ADD COLUMN ino INTEGER;
    CREATE INDEX files_vec_row ON files(status, vec_row, hash);
    """,
    # version 4: what identifies an indexed photo's sidecar files (one added, edited or removed later is read
    # again); NULL until the next run looks
    """
    ALTER TABLE files ADD COLUMN sidecar TEXT;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

OK, SKIPPED = "ok", "skipped"
ID_HASH_MOD = 2_147_483_647  # the digest of a set of file ids sums id² modulo this prime (Catalog.snapshot_digest)
_DAMAGE_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB (primary result codes)
_WRITE_CODES = {10, 13}   # SQLITE_IOERR, SQLITE_FULL
# every distinct status but NULL, by skipping through the index on (status, ...): a few lookups, not a scan
_DISTINCT_STATUSES = ("WITH RECURSIVE s(v) AS (SELECT MIN(status) FROM files UNION ALL "
                      "SELECT (SELECT MIN(status) FROM files WHERE status > s.v) FROM s WHERE s.v IS NOT NULL) "
                      "SELECT v FROM s WHERE v IS NOT NULL")
_PARKED = b"\x00moving\x00"  # a path no file can have (NUL): a moved row's path while paths are swapped


def _error(exc: sqlite3.Error, path: Path) -> IndexStateError:
    """One line for an SQLite error: damage, or why the catalog cannot be used now (locked, full, read-only)."""
    code = getattr(exc, "sqlite_errorcode", None)
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if (code is not None and code & 0xFF in _DAMAGE_CODES) or "malformed" in text or "not a database" in text:
        return IndexDamagedError(f"the catalog {path} is damaged ({text})")
    if code is not None and code & 0xFF in _WRITE_CODES:
        text += _file_size_limit()
    return IndexStateError(f"cannot use the catalog {path} ({text})")


def _file_size_limit() -> str:
    """Words naming the process's file-size limit (``ulimit -f``) when there is one: SQLite reports the write it
    refused only as an I/O error."""
    try:
        import resource
    except ImportError:  # not on Windows
        return ""
    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return "" if soft == resource.RLIM_INFINITY else f"; the file-size limit (ulimit -f) is {size_text(soft)}"


@dataclass
class FileRow:
    """One catalog row. ``status`` is ``ok`` (vectors at ``vec_row``) or ``skipped`` (see ``reason``)."""

    id: int | None
    path: bytes
    size: int
    mtime_ns: int
    hash: str | None
    width: int | None
    height: int | None
    date_taken: str | None
    status: str
    reason: str | None
    vec_row: int | None
    ino: int | None = None  # None: recorded before the catalog kept inodes
    sidecar: str | None = None  # search.captions.sidecar_state when its captions were read (indexed files)

    @property
    def display(self) -> str:
        return self.path.decode("utf-8", "backslashreplace")


_COLS = ", ".join(f.name for f in fields(FileRow))


class Catalog:
    """Thread-safe access to ``catalog.sqlite`` (one connection, one lock)."""

    def __init__(self, conn: sqlite3.Connection, path: Path, read_only: bool = False):
        self.conn = conn
        self.path = path
        self.read_only = read_only
        self.lock = threading.RLock()

    @classmethod
    def open(cls, path: str | Path, read_only: bool = False) -> "Catalog":
        """Open (creating and migrating when needed) the catalog at ``path``; ``read_only``: a catalog in a folder
        this process may not write, opened without changing anything (an older schema is then an error)."""
        path = Path(path)
        conn = None
        try:
            if read_only:
                conn = _connect_read_only(path)
            else:
                conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise IndexStateError(f"catalog {path} has schema version {version}; this program knows up to "
                                      f"{SCHEMA_VERSION} (it was written by a newer version)")
            if version < SCHEMA_VERSION and read_only:
                raise IndexStateError(f"catalog {path} has schema version {version} and cannot be upgraded to "
                                      f"{SCHEMA_VERSION} (read-only)")
            for step in range(version, SCHEMA_VERSION):
                log.info("migrating catalog %s to version %d", path, step + 1)
                conn.executescript(f"BEGIN; {MIGRATIONS[step]} PRAGMA user_version = {step + 1}; COMMIT;")
        except (sqlite3.Error, IndexStateError) as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, IndexStateError):
                raise
            raise _error(exc, path) from exc
        return cls(conn, path, read_only)

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the connection; SQLite errors leave as IndexStateError (IndexDamagedError for damage)."""
        with self.lock:
            try:
                yield
            except sqlite3.Error as exc:
                raise _error(exc, self.path) from exc

    @contextmanager
    def _tx(self) -> Iterator[None]:
        """One explicit transaction (the connection is in autocommit mode otherwise)."""
        if self.read_only:
            raise IndexStateError(f"the catalog {self.path} is read-only")
        with self._locked():
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def snapshot(self) -> tuple[dict[str, str], list[tuple[int, int]]]:
        """``meta()`` and ``live()`` read in one transaction: a run committing in between cannot make rows look
        like they point past ``next_row``."""
        with self._locked():
            self.conn.execute("BEGIN")
            try:
                meta = dict(self.conn.execute("SELECT key, value FROM meta"))
                live = list(self.conn.execute("SELECT id, vec_row FROM files WHERE status = ? ORDER BY id", (OK,)))
            finally:
                self.conn.execute("COMMIT")
        return meta, live

    def snapshot_digest(self) -> tuple[dict[str, str], tuple[int, int, int, int]]:
        """``meta()`` and a digest of ``live()`` read in one transaction, computed inside SQLite (milliseconds where
        :meth:`snapshot` takes a second at a million files): (count, sum of ids, sum of :func:`id_hash`, largest
        vector row or -1)."""
        with self._locked():
            self.conn.execute("BEGIN")
            try:
                meta = dict(self.conn.execute("SELECT key, value FROM meta"))
                n, s1, s2, top = self.conn.execute(
                    f"SELECT COUNT(*), SUM(id), SUM((id % {ID_HASH_MOD}) * (id % {ID_HASH_MOD}) % {ID_HASH_MOD}), MAX(vec_row) FROM files "
                    "WHERE status = ?", (OK,)).fetchone()
            finally:
                self.conn.execute("COMMIT")
        return meta, (int(n), int(s1 or 0), int(s2 or 0), -1 if top is None else int(top))

    def check(self, full: bool = True) -> str | None:
        """What is damaged, in a few words, or None. Always: values no run writes (``next_row`` below 0, a status
        other than ok/skipped, an indexed file's vector row missing or out of range), found by index lookups, a few
        milliseconds whatever the size. ``full`` adds SQLite's ``PRAGMA quick_check``, photos of different content
        sharing a vector row, indexed files without a hash or with a non-integer row, and paths that leave the
        photo folder: every page is read (about as long as reading the catalog's rows once)."""
        with self._locked():
            if full:
                verdict = self.conn.execute("PRAGMA quick_check(1)").fetchone()[0]
                if verdict != "ok":
                    lines = [line for line in str(verdict).splitlines() if line.strip() and not line.startswith("***")]
                    return f"SQLite's check: {(lines or ['failed'])[0]}"
            meta = dict(self.conn.execute("SELECT key, value FROM meta"))
            try:
                next_row = int(meta.get("next_row", "0"))
            except ValueError:
                next_row = -1
            if next_row < 0:
                return f"next_row is {meta.get('next_row')!r}"
            if meta.get("compacting", "0") not in ("0", "1"):
                return f"compacting is {meta.get('compacting')!r}"
            odd = [v for v, in self.conn.execute(_DISTINCT_STATUSES) if v not in (OK, SKIPPED)]
            checks = [("status IS ?", (odd[0] if odd else None,)),  # each condition an index lookup
                      ("status = ? AND vec_row < 0", (OK,)), ("status = ? AND vec_row >= ?", (OK, next_row)),
                      ("status = ? AND vec_row IS NULL", (OK,))]
            if full:
                checks.append(("status = ? AND (hash IS NULL OR typeof(vec_row) != 'integer')", (OK,)))
            for where, args in checks:
                bad = self.conn.execute(f"SELECT path, status, vec_row FROM files WHERE {where} LIMIT 1", args).fetchone()
                if bad is not None:
                    return (f"the row of {_shown(bad[0])} holds status {bad[1]!r}, vector row {bad[2]!r} "
                            f"(next_row {next_row})")
            if not full:
                return None
            shared = self.conn.execute(
                "SELECT vec_row FROM files WHERE status = ? GROUP BY vec_row HAVING COUNT(DISTINCT hash) > 1 LIMIT 1",
                (OK,)).fetchone()
            if shared is not None:
                return f"photos of different content share vector row {shared[0]}"
            bad = self.conn.execute(  # a path that leaves the photo folder
                "SELECT path FROM files WHERE typeof(path) != 'blob' OR length(path) = 0 OR substr(path, 1, 1) = "
                "x'2f' OR instr(path, x'00') > 0 OR path = x'2e2e' OR path LIKE '../%' OR path LIKE '%/../%' "
                "OR path LIKE '%/..' LIMIT 1").fetchone()
            if bad is not None:
                return f"the path {_shown(bad[0])} leaves the photo folder"
        return None

    # -- meta ------------------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        with self._locked():
            return dict(self.conn.execute("SELECT key, value FROM meta"))

    def set_meta(self, values: dict[str, object]) -> None:
        with self._tx():
            self._set_meta(values)

    def _set_meta(self, values: dict[str, object]) -> None:
        self.conn.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                              [(k, str(v)) for k, v in values.items()])

    # -- files -----------------------------------------------------------------------------------
    def files(self) -> dict[bytes, FileRow]:
        with self._locked():
            return {r.path: r for r in map(self._row, self.conn.execute(f"SELECT {_COLS} FROM files"))}

    def _select_ids(self, columns: str, ids: Iterable[int]) -> list[tuple]:
        """``columns`` of the files whose id is in ``ids`` (looked up by key, 500 at a time)."""
        ids = [int(i) for i in ids]
        out: list[tuple] = []
        with self._locked():
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                out += self.conn.execute(f"SELECT {columns} FROM files WHERE id IN ({','.join('?' * len(chunk))})",
                                         chunk)
        return out

    def by_ids(self, ids: Iterable[int]) -> dict[int, FileRow]:
        return {r.id: r for r in map(self._row, self._select_ids(_COLS, ids))}

    def vec_rows(self, ids: Iterable[int]) -> dict[int, int]:
        """{file id: vector row} of the indexed files among ``ids`` (a light :meth:`by_ids`)."""
        return {i: r for i, r, status in self._select_ids("id, vec_row, status", ids) if status == OK}

    def by_path(self, rel: bytes) -> FileRow | None:
        with self._locked():
            row = self.conn.execute(f"SELECT {_COLS} FROM files WHERE path = ?", (rel,)).fetchone()
        return self._row(row) if row else None

    def indexed(self) -> list[FileRow]:
        """Every indexed file (status ``ok``)."""
        with self._locked():
            return [self._row(v) for v in self.conn.execute(f"SELECT {_COLS} FROM files WHERE status = ?", (OK,))]

    def live(self) -> list[tuple[int, int]]:
        """(file id, vector row) of every indexed file, by id."""
        with self._locked():
            return list(self.conn.execute("SELECT id, vec_row FROM files WHERE status = ? ORDER BY id", (OK,)))

    def skipped(self) -> list[tuple[str, str]]:
        with self._locked():
            rows = self.conn.execute("SELECT path, reason FROM files WHERE status = ? ORDER BY path", (SKIPPED,))
            return [(bytes(p).decode("utf-8", "backslashreplace"), r or "") for p, r in rows]

    def counts(self) -> dict[str, int]:
        with self._locked():
            return {s: n for s, n in self.conn.execute("SELECT status, COUNT(*) FROM files GROUP BY status")}

    def commit(self, upsert: Sequence[FileRow] = (), delete: Iterable[int] = (), meta: dict | None = None,
               captions_add: Iterable[tuple[str, str]] = (), captions_remove: Iterable[str] = ()) -> list[int]:
        """Apply one batch atomically: delete ids, update rows that have an id (any of them may take another's
        path: a swap or a rotation of names), insert rows without one (replacing a row left at that path), add and
        remove captions ((text, source) pairs; sources), set meta. Returns the ids of ``upsert`` in order."""
        ids: list[int] = []
        names = [f.name for f in fields(FileRow)[1:]]
        with self._tx():
            self.conn.executemany("DELETE FROM files WHERE id = ?", [(int(i),) for i in delete])
            moved = [(_PARKED + str(r.id).encode(), r.id) for r in upsert if r.id is not None]
            self.conn.executemany("UPDATE files SET path = ? WHERE id = ?", moved)  # free every path first
            for row in upsert:
                values = astuple(row)[1:]
                if row.id is None:
                    self.conn.execute("DELETE FROM files WHERE path = ?", (row.path,))
                    cur = self.conn.execute(
                        f"INSERT INTO files({', '.join(names)}, display) VALUES ({','.join('?' * len(values))}, ?) "
                        "RETURNING id", (*values, row.display))
                    ids.append(cur.fetchone()[0])
                else:
                    sets = ", ".join(f"{n} = ?" for n in names)
                    self.conn.execute(f"UPDATE files SET {sets}, display = ? WHERE id = ?", (*values, row.display, row.id))
                    ids.append(row.id)
            self.conn.executemany("DELETE FROM captions WHERE source = ?", [(s,) for s in captions_remove])
            self.conn.executemany("INSERT OR IGNORE INTO captions(text, source) VALUES (?, ?)", list(captions_add))
            if meta:
                self._set_meta(meta)
        return ids

    def renumber_rows(self, mapping: dict[int, int], meta: dict) -> None:
        """Point every file at vector row ``mapping[old]`` instead of ``old``, and set ``meta``, in one
        transaction. New numbers must not exceed old ones (compaction), so updating in ascending order of the
        old number never collides with a row not yet renumbered."""
        with self._tx():
            self.conn.executemany("UPDATE files SET vec_row = ? WHERE vec_row = ? AND status = ?",
                                  [(new, old, OK) for old, new in sorted(mapping.items())])
            self._set_meta(meta)

    def reset_vectors(self, meta: dict) -> None:
        """Forget every vector (re-encode with another model): rows become un-indexed."""
        with self._tx():
            self.conn.execute("DELETE FROM files")
            self._set_meta(meta)

    # -- captions --------------------------------------------------------------------------------
    def add_captions(self, texts: Iterable[str], source: str) -> int:
        with self._tx():
            before = self.conn.total_changes
            self.conn.executemany("INSERT OR IGNORE INTO captions(text, source) VALUES (?, ?)",
                                  [(t, source) for t in texts])
            return self.conn.total_changes - before

    def remove_captions(self, source_prefix: str) -> None:
        with self._tx():
            self.conn.execute("DELETE FROM captions WHERE source LIKE ? || '%'", (source_prefix,))

    def captions(self) -> list[tuple[str, str]]:
        with self._locked():
            return list(self.conn.execute("SELECT text, source FROM captions ORDER BY id"))

    @staticmethod
    def _row(values) -> FileRow:
        row = FileRow(*values)
        row.path = bytes(row.path)
        return row


def _shown(path) -> str:
    return repr(bytes(path).decode("utf-8", "backslashreplace") if isinstance(path, bytes) else path)


REENCODE_HINT = "re-encode it: sfe-desktop index DIR --reencode"


def other_checkpoint(index_dir: Path, built_with: str, checkpoint_id: str) -> str | None:
    """Why an index built with checkpoint ``built_with`` cannot be searched with ``checkpoint_id`` (None: it can)."""
    if not built_with or built_with == checkpoint_id:
        return None
    return (f"the index in {index_dir} was built with checkpoint {built_with[:12]}, not {checkpoint_id[:12]}: "
            f"{REENCODE_HINT}")


def built_with(path: str | Path) -> str | None:
    """The checkpoint id the catalog at ``path`` was built with, read without writing anything; None when it
    has none or cannot be read (opening it properly will say why)."""
    try:
        conn = _connect_read_only(Path(path))
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'checkpoint_id'").fetchone()
        finally:
            conn.close()
    except (sqlite3.Error, IndexStateError, OSError):
        return None
    return row[0] if row else None


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that writes nothing: ``mode=ro``, else (a WAL catalog in a folder where SQLite cannot create its
    shared-memory file) ``immutable=1``, which is right for a folder nobody can write."""
    from urllib.parse import quote

    if not path.is_file():
        raise IndexStateError(f"catalog {path} not found (read-only folder)")
    last = None
    for option in ("mode=ro", "immutable=1"):
        try:
            conn = sqlite3.connect(f"file:{quote(str(path))}?{option}", uri=True, check_same_thread=False,
                                   isolation_level=None, timeout=10)
        except sqlite3.Error as exc:
            last = exc
            continue
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.Error as exc:
            conn.close()
            last = exc
    raise last
