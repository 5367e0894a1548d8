"""Notes and lists (shopping list and any named list) tool plugin, stored locally.

Notes are appended to ``notes.md`` in the documents folder, so they are plain text the user can
read and the search tool finds them. List items live in SQLite (``lists.db``).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from pathlib import Path

from assistant.errors import ToolError
from assistant.toolkit import PluginContext, Risk, Toolbox, hookimpl, tool

__all__ = ["Notes", "documents_dir", "register_tools"]

DEFAULT_LIST = "shopping list"


def documents_dir(context: PluginContext) -> Path:
    d = context.config.search.documents_dir or (context.config.paths.resolved_data_dir() / "documents")
    return Path(d).expanduser()


def _list_name(name: str | None) -> str:
    """``None`` → "shopping list"; "Chores" → "chores list"; "to do list" stays."""
    n = (name or DEFAULT_LIST).strip().casefold()
    return n if n.endswith(" list") else f"{n} list"


class Notes(Toolbox):
    """Notes and lists.

    Args:
        documents: Folder where ``notes.md`` lives.
        db_path: SQLite file for lists.
    """

    name = "notes"

    def __init__(self, documents: Path, db_path: Path) -> None:
        self.documents = documents
        self.db_path = db_path
        self.db: sqlite3.Connection | None = None

    async def start(self) -> None:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.db_path), isolation_level=None, check_same_thread=False)
        self.db.execute("CREATE TABLE IF NOT EXISTS items (list TEXT, item TEXT, done INTEGER DEFAULT 0, added REAL)")

    async def close(self) -> None:
        if self.db:
            self.db.close()

    def _sql(self, sql: str, args: tuple = ()) -> list[tuple]:
        assert self.db is not None
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            raise ToolError(f"the list database failed: {exc}", hint="the disk may be full") from None

    @tool(risk=Risk.HOME)
    def note_add(self, text: str) -> dict:
        """Write down a note.

        Args:
            text: What to remember.
        """
        if not text.strip():
            raise ToolError("What should the note say?")
        path = self.documents / "notes.md"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as f:
                f.write(f"- {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}: {text.strip()}\n")
        except OSError as exc:
            raise ToolError(f"I couldn't save the note: {exc}", hint="free some disk space") from None
        return {"say": "Noted.", "file": str(path)}

    @tool(risk=Risk.READ_ONLY, templates=["read [me] my notes", "what are my notes"])
    def notes_read(self, last: int = 3) -> dict:
        """Read the most recent notes.

        Args:
            last: How many.
        """
        path = self.documents / "notes.md"
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        notes = [l[2:].split(": ", 1)[-1] for l in lines if l.startswith("- ")][-last:]
        if not notes:
            return {"say": "You have no notes.", "notes": []}
        return {"say": "Your notes: " + "; ".join(notes) + ".", "notes": notes}

    @tool(risk=Risk.HOME)
    def list_add(self, item: str, list_name: str | None = None) -> dict:
        """Add an item to a list (the shopping list unless another is named).

        Args:
            item: What to add, e.g. "milk".
            list_name: The list, e.g. "shopping list", "to do list".
        """
        item = item.strip()
        if not item:
            raise ToolError("What should I add?")
        name = _list_name(list_name)
        self._sql("INSERT INTO items VALUES (?, ?, 0, ?)", (name, item, time.time()))
        return {"say": f"Added {item} to your {name}.", "list": name, "item": item}

    @tool(
        risk=Risk.HOME,
        templates=[
            "(check [off]|complete|remove|delete|cross [off]|tick [off]) {item} [off] (from|on|in|off) my shopping list",
            "(check [off]|complete|remove|delete|cross [off]|tick [off]) {item} [off] (from|on|in|off) my list",
            "(check [off]|complete|remove|delete|cross [off]|tick [off]) {item} [off] (from|on|in|off) my {list_name} list",
        ],
    )
    def list_complete(self, item: str, list_name: str | None = None) -> dict:
        """Check an item off a list.

        Args:
            item: The item.
            list_name: The list (default: shopping list).
        """
        name = _list_name(list_name)
        rows = self._sql("SELECT rowid FROM items WHERE list = ? AND lower(item) = lower(?) AND done = 0", (name, item.strip()))
        if not rows:
            raise ToolError(f"{item} is not on your {name}.")
        self._sql("UPDATE items SET done = 1 WHERE rowid = ?", (rows[0][0],))
        return {"say": f"Checked {item} off your {name}.", "list": name, "item": item}

    @tool(risk=Risk.READ_ONLY, templates=["(what's|what is|what do i have) on my [shopping] list", "read [me] my [shopping] list"])
    def list_read(self, list_name: str | None = None) -> dict:
        """Read out a list.

        Args:
            list_name: The list (default: shopping list).
        """
        name = _list_name(list_name)
        items = [r[0] for r in self._sql("SELECT item FROM items WHERE list = ? AND done = 0 ORDER BY added", (name,))]
        if not items:
            return {"say": f"Your {name} is empty.", "items": []}
        return {"say": f"On your {name}: {', '.join(items)}.", "items": items}


@hookimpl
def register_tools(register, context: PluginContext) -> None:
    register(Notes(documents_dir(context), context.data_dir / "lists.db"))
