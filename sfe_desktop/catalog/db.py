"""SQLite catalog (WAL mode) of the files of one collection.

The schema version lives in ``PRAGMA user_version``; :data:`MIGRATIONS` holds one step per version
and :meth:`Catalog.open` applies the missing ones in order. Paths are stored as bytes relative to
the photo folder (exact, even when not UTF-8) with a UTF-8 display copy.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from ..errors import IndexStateError

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
]
SCHEMA_VERSION = len(MIGRATIONS)

OK, SKIPPED = "ok", "skipped"


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

    @property
    def display(self) -> str:
        return self.path.decode("utf-8", "backslashreplace")


_COLS = ", ".join(f.name for f in fields(FileRow))


class Catalog:
    """Thread-safe access to ``catalog.sqlite`` (one connection, one lock)."""

    def __init__(self, conn: sqlite3.Connection, path: Path):
        self.conn = conn
        self.path = path
        self.lock = threading.RLock()

    @classmethod
    def open(cls, path: str | Path) -> "Catalog":
        path = Path(path)
        try:
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise IndexStateError(f"cannot open catalog {path}: {exc}") from exc
        if version > SCHEMA_VERSION:
            conn.close()
            raise IndexStateError(f"catalog {path} has schema version {version}; this program knows up to {SCHEMA_VERSION}")
        for step in range(version, SCHEMA_VERSION):
            log.info("migrating catalog %s to version %d", path, step + 1)
            conn.executescript(f"BEGIN; {MIGRATIONS[step]} PRAGMA user_version = {step + 1}; COMMIT;")
        return cls(conn, path)

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    @contextmanager
    def _tx(self) -> Iterator[None]:
        """One explicit transaction (the connection is in autocommit mode otherwise)."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    # -- meta ------------------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        with self.lock:
            return dict(self.conn.execute("SELECT key, value FROM meta"))

    def set_meta(self, values: dict[str, object]) -> None:
        with self._tx():
            self._set_meta(values)

    def _set_meta(self, values: dict[str, object]) -> None:
        self.conn.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                              [(k, str(v)) for k, v in values.items()])

    # -- files -----------------------------------------------------------------------------------
    def files(self) -> dict[bytes, FileRow]:
        with self.lock:
            return {r.path: r for r in map(self._row, self.conn.execute(f"SELECT {_COLS} FROM files"))}

    def by_ids(self, ids: Iterable[int]) -> dict[int, FileRow]:
        ids = [int(i) for i in ids]
        out: dict[int, FileRow] = {}
        with self.lock:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                q = f"SELECT {_COLS} FROM files WHERE id IN ({','.join('?' * len(chunk))})"
                out.update((r.id, r) for r in map(self._row, self.conn.execute(q, chunk)))
        return out

    def by_path(self, rel: bytes) -> FileRow | None:
        with self.lock:
            row = self.conn.execute(f"SELECT {_COLS} FROM files WHERE path = ?", (rel,)).fetchone()
        return self._row(row) if row else None

    def indexed(self) -> list[FileRow]:
        """Every indexed file (status ``ok``)."""
        with self.lock:
            return [self._row(v) for v in self.conn.execute(f"SELECT {_COLS} FROM files WHERE status = ?", (OK,))]

    def live(self) -> list[tuple[int, int]]:
        """(file id, vector row) of every indexed file, by id."""
        with self.lock:
            return list(self.conn.execute("SELECT id, vec_row FROM files WHERE status = ? ORDER BY id", (OK,)))

    def skipped(self) -> list[tuple[str, str]]:
        with self.lock:
            rows = self.conn.execute("SELECT path, reason FROM files WHERE status = ? ORDER BY path", (SKIPPED,))
            return [(bytes(p).decode("utf-8", "backslashreplace"), r or "") for p, r in rows]

    def counts(self) -> dict[str, int]:
        with self.lock:
            return {s: n for s, n in self.conn.execute("SELECT status, COUNT(*) FROM files GROUP BY status")}

    def commit(self, upsert: Sequence[FileRow] = (), delete: Iterable[int] = (), meta: dict | None = None) -> list[int]:
        """Apply one batch atomically: delete ids, insert or update rows (rows without an id are
        matched by path), set meta. Returns the ids of ``upsert`` in order."""
        ids: list[int] = []
        with self._tx():
            self.conn.executemany("DELETE FROM files WHERE id = ?", [(int(i),) for i in delete])
            for row in upsert:
                values = astuple(row)[1:]
                if row.id is None:
                    cur = self.conn.execute(
                        f"INSERT INTO files({_COLS}, display) VALUES (NULL, {','.join('?' * len(values))}, ?) "
                        "ON CONFLICT(path) DO UPDATE SET size=excluded.size, mtime_ns=excluded.mtime_ns, "
                        "hash=excluded.hash, width=excluded.width, height=excluded.height, "
                        "date_taken=excluded.date_taken, status=excluded.status, reason=excluded.reason, "
                        "vec_row=excluded.vec_row RETURNING id", (*values, row.display))
                    ids.append(cur.fetchone()[0])
                else:
                    sets = ", ".join(f"{f.name} = ?" for f in fields(FileRow)[1:])
                    self.conn.execute(f"UPDATE files SET {sets}, display = ? WHERE id = ?", (*values, row.display, row.id))
                    ids.append(row.id)
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
        with self.lock:
            return list(self.conn.execute("SELECT text, source FROM captions ORDER BY id"))

    @staticmethod
    def _row(values) -> FileRow:
        row = FileRow(*values)
        row.path = bytes(row.path)
        return row
