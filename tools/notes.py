"""Notes and lists (shopping list, to-do lists and any named list) tool plugin.

Notes are appended to ``notes.md`` in the documents folder, so they are plain text the user can
read and the search tool finds them. A list the home has (a Home Assistant ``todo.*`` entity such
as "Chores" or "Shopping List") is used through the home backend, so items land where the rest of
the household sees them; any other list lives in SQLite (``lists.db``). Items to check off or
remove are matched tolerantly ("I watered the plants" checks off "Water the plants").
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from pathlib import Path

from typing import Any

from rapidfuzz import fuzz, process

from assistant.errors import ToolError
from assistant.home import EntityResolver, normalize
from assistant.toolkit import PluginContext, Risk, Toolbox, hookimpl, tool
from assistant.toolkit.storage import open_sqlite

__all__ = ["Notes", "documents_dir", "register_tools"]

DEFAULT_LIST = "shopping list"
ITEM_MATCH = 70.0
"""rapidfuzz token-set ratio an item said needs to match an item on the list ("the dry cleaning" /
"Pick up dry cleaning")."""


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

    def __init__(self, documents: Path, db_path: Path, services: dict[str, Any] | None = None) -> None:
        self.documents = documents
        self.db_path = db_path
        self.db: sqlite3.Connection | None = None
        self.services = services if services is not None else {}

    async def start(self) -> None:
        # a corrupt file is kept aside and started afresh; a read-only disk still shows the lists
        self.db = open_sqlite(self.db_path, "CREATE TABLE IF NOT EXISTS items (list TEXT, item TEXT, done INTEGER DEFAULT 0, added REAL)")

    async def close(self) -> None:
        if self.db:
            self.db.close()

    def _sql(self, sql: str, args: tuple = ()) -> list[tuple]:
        assert self.db is not None
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            raise ToolError(f"the list database failed: {exc}", hint="the disk may be full") from None

    @tool(risk=Risk.HOME, templates=[
        "(take|make|write) [down] a note [that|saying|to] {text}",
        "note [down] that {text}",
        "(write|jot) [it] down [that] {text}",
        "(remember|don't forget) that {text}",
        "remember to {text}",
        "add [a] note [that|saying] {text}",
    ], dictated=["text"])
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

    @tool(risk=Risk.READ_ONLY, templates=["read [me] my [last] notes", "what are my notes", "(what's|what is) in my notes",
                                          "what did i (note|write down)"])
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
        # one sentence per note: spoken with a pause between them, and a stop cuts between notes
        said = " ".join(n[:1].upper() + n[1:].rstrip(".!?") + "." for n in notes)
        head = "Your note:" if len(notes) == 1 else f"Your last {len(notes)} notes."
        return {"say": f"{head} {said}", "notes": notes}

    # ------------------------------------------------------------------ lists

    def _home_list(self, list_name: str | None) -> tuple[Any, Any] | None:
        """(backend, todo entity) when the home has the list, else None (a local list)."""
        home = self.services.get("home")
        if home is None:
            return None
        snap = home.snapshot()
        todos = [e for e in snap.entities if e.domain == "todo"]
        if not todos:
            return None
        said = normalize(list_name or DEFAULT_LIST)
        for prefix in ("my ", "the ", "our "):
            said = said.removeprefix(prefix)
        resolver = EntityResolver(snap)
        for name in dict.fromkeys((said, said.removesuffix(" list"), said.removesuffix(" list") + "s")):
            if not name:
                continue
            res = resolver.resolve(name=name, domain=["todo"], plural=False)
            if res.ok and len(res.entities) == 1:
                return home, res.entities[0]
        if list_name is None and len(todos) == 1:
            return home, todos[0]
        return None

    @staticmethod
    def _closest(item: str, items: list[str]) -> str | None:
        if not items:
            return None
        for exact in items:
            if exact.casefold() == item.casefold():
                return exact
        hit = process.extractOne(normalize(item), {i: normalize(i) for i in items}, scorer=fuzz.token_set_ratio, score_cutoff=ITEM_MATCH)
        return hit[2] if hit else None

    def add_prompt(self, item: str, list_name: str | None = None) -> str:
        """The question before adding an item Whisper was unsure of: "Add “oat milk” to the shopping list?"."""
        home = self._home_list(list_name)
        where = _spoken_list(home[1].name) if home is not None else f"your {_list_name(list_name)}"
        return f"Add “{item.strip()}” to {where}?"

    @tool(risk=Risk.HOME, dictated=["item"], confirm_prompt="add_prompt")
    async def list_add(self, item: str, list_name: str | None = None) -> dict:
        """Add an item to a list: the shopping list unless another is named (a to-do list, "chores").

        Args:
            item: What to add, e.g. "milk".
            list_name: The list, e.g. "shopping list", "chores", "to do list".
        """
        item = item.strip()
        if not item:
            raise ToolError("What should I add?")
        home = self._home_list(list_name)
        if home is not None:
            backend, entity = home
            await backend.call_service(entity, "add_item", {"item": item})
            return {"say": f"Added {item} to {_spoken_list(entity.name)}.", "list": entity.id, "item": item}
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
    async def list_complete(self, item: str, list_name: str | None = None) -> dict:
        """Check an item off a list (mark it done; "remove X from my list" does this too, as in Home Assistant).

        Args:
            item: The item, as said.
            list_name: The list (default: shopping list).
        """
        home = self._home_list(list_name)
        if home is not None:
            backend, entity = home
            items = [i["summary"] for i in await backend.todo_items(entity) if i.get("status") != "completed"]
            found = self._closest(item, items)
            if found is None:
                raise ToolError(f"{item} is not on {_spoken_list(entity.name)}.")
            await backend.call_service(entity, "update_item", {"item": found, "status": "completed"})
            return {"say": f"Checked {found} off {_spoken_list(entity.name)}.", "list": entity.id, "item": found}
        name = _list_name(list_name)
        rows = self._sql("SELECT rowid, item FROM items WHERE list = ? AND done = 0", (name,))
        found = self._closest(item.strip(), [r[1] for r in rows])
        if found is None:
            raise ToolError(f"{item} is not on your {name}.")
        rowid = next(r[0] for r in rows if r[1] == found)
        self._sql("UPDATE items SET done = 1 WHERE rowid = ?", (rowid,))
        return {"say": f"Checked {found} off your {name}.", "list": name, "item": found}

    @tool(risk=Risk.HOME)
    async def list_remove(self, item: str, list_name: str | None = None) -> dict:
        """Remove an item from a list altogether.

        Args:
            item: The item, as said.
            list_name: The list (default: shopping list).
        """
        home = self._home_list(list_name)
        if home is not None:
            backend, entity = home
            found = self._closest(item, [i["summary"] for i in await backend.todo_items(entity)])
            if found is None:
                raise ToolError(f"{item} is not on {_spoken_list(entity.name)}.")
            await backend.call_service(entity, "remove_item", {"item": found})
            return {"say": f"Removed {found} from {_spoken_list(entity.name)}.", "list": entity.id, "item": found}
        name = _list_name(list_name)
        rows = self._sql("SELECT rowid, item FROM items WHERE list = ?", (name,))
        found = self._closest(item.strip(), [r[1] for r in rows])
        if found is None:
            raise ToolError(f"{item} is not on your {name}.")
        self._sql("DELETE FROM items WHERE list = ? AND item = ?", (name, found))
        return {"say": f"Removed {found} from your {name}.", "list": name, "item": found}

    @tool(risk=Risk.READ_ONLY, templates=["(what's|what is|what do i have) on my [shopping] list", "read [me] my [shopping] list"])
    async def list_read(self, list_name: str | None = None) -> dict:
        """Read out what is still to do or to buy on a list.

        Args:
            list_name: The list (default: shopping list).
        """
        home = self._home_list(list_name)
        if home is not None:
            backend, entity = home
            items = [i["summary"] for i in await backend.todo_items(entity) if i.get("status") != "completed"]
            where = _spoken_list(entity.name)
        else:
            name = _list_name(list_name)
            items = [r[0] for r in self._sql("SELECT item FROM items WHERE list = ? AND done = 0 ORDER BY added", (name,))]
            where = f"your {name}"
        if not items:
            return {"say": f"{where[0].upper() + where[1:]} is empty.", "items": []}
        return {"say": f"On {where}: {', '.join(items)}.", "items": items}


def _spoken_list(name: str) -> str:
    """ "Chores" → "the chores list"; "Shopping List" → "the shopping list"."""
    n = name.strip()
    low = n.lower()
    return f"the {low}" if low.endswith(("list", "lists")) else f"the {low} list"


@hookimpl
def register_tools(register, context: PluginContext) -> None:
    register(Notes(documents_dir(context), context.data_dir / "lists.db", context.services))
