"""SQLite files for plugins' state that survive what a Pi's SD card does to them.

:func:`open_sqlite` opens (and creates) a database so that a corrupt file never disables a tool
for good: the corrupt file is kept aside (``<name>.corrupt-<unix time>``) for recovery and a new
one is started; on a read-only or full disk the existing state is still opened read-only, so it
can be read and said, and writes fail with a clear error.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

__all__ = ["open_sqlite"]

log = logging.getLogger(__name__)


def open_sqlite(path: Path, schema: str, *, wal: bool = False) -> sqlite3.Connection:
    """Open ``path`` (autocommit, usable from any thread) and run ``schema`` (``CREATE TABLE IF NOT EXISTS …``).

    Raises:
        sqlite3.Error: The file cannot be opened at all (no such folder and none can be made, or
            a read-only disk with no database on it yet).
    """

    def connect() -> sqlite3.Connection:
        db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        try:
            if wal:
                db.execute("PRAGMA journal_mode=WAL")
            db.executescript(schema)
        except BaseException:
            db.close()
            raise
        return db

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass  # a read-only disk: the folder may still be there
    try:
        return connect()
    except sqlite3.OperationalError as exc:  # read-only, full or locked: keep what is there readable
        if not path.exists():
            raise
        db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, isolation_level=None, check_same_thread=False)
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        log.warning("%s cannot be written (%s); opened read-only: its state is there, changes will fail", path, exc)
        return db
    except sqlite3.DatabaseError as exc:  # not a database any more: keep it aside for recovery, start afresh
        aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        path.rename(aside)
        for extra in ("-wal", "-shm"):
            Path(str(path) + extra).unlink(missing_ok=True)
        log.warning("%s was corrupt (%s); kept as %s and started afresh", path, exc, aside)
        return connect()
