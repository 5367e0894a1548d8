"""Search tool plugin: local full-text search of the user's documents, and web search via SearXNG.

Local search keeps an SQLite FTS5 index (``search.db`` in the plugin's data folder) of the text
files in the documents folder (``.txt``, ``.md``, ``.rst``, ``.org``, ``.csv``, ``.json``,
``.html``), split into paragraphs. Indexing is incremental: before each search, files whose size
or modification time changed are re-indexed and deleted files are dropped.

Web search sends the query off the device to a self-hosted SearXNG instance's JSON API
(``/search?format=json``), so it is an off-device tool and asks for confirmation by default.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from pathlib import Path

import httpx

from assistant.errors import ToolError
from assistant.toolkit import PluginContext, Risk, Toolbox, hookimpl, tool

from .notes import documents_dir

__all__ = ["DocumentIndex", "Search", "register_tools"]

TEXT_SUFFIXES = {".txt", ".md", ".rst", ".org", ".csv", ".json", ".html", ".htm"}
_MAX_BYTES = 2_000_000


class DocumentIndex:
    """Incremental FTS5 index of a folder.

    Args:
        root: The documents folder.
        db_path: The index file.
    """

    def __init__(self, root: Path, db_path: Path) -> None:
        self.root = root
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(db_path), isolation_level=None, check_same_thread=False)
        self.db.execute("CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER)")
        self.db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS chunks USING fts5(path UNINDEXED, text, tokenize='porter unicode61')")
        self._lock = threading.Lock()

    def refresh(self) -> dict[str, int]:
        """Bring the index up to date. Returns counts of files added/updated and removed."""
        with self._lock:
            known = {p: (s, m) for p, s, m in self.db.execute("SELECT path, size, mtime_ns FROM files")}
            seen: set[str] = set()
            updated = 0
            if self.root.is_dir():
                for p in self.root.rglob("*"):
                    if not p.is_file() or p.suffix.lower() not in TEXT_SUFFIXES or p.name.startswith("."):
                        continue
                    rel = str(p.relative_to(self.root))
                    seen.add(rel)
                    st = p.stat()
                    if known.get(rel) == (st.st_size, st.st_mtime_ns):
                        continue
                    self._index(p, rel, st.st_size, st.st_mtime_ns)
                    updated += 1
            removed = [p for p in known if p not in seen]
            for rel in removed:
                self.db.execute("DELETE FROM chunks WHERE path = ?", (rel,))
                self.db.execute("DELETE FROM files WHERE path = ?", (rel,))
            return {"updated": updated, "removed": len(removed)}

    def _index(self, path: Path, rel: str, size: int, mtime_ns: int) -> None:
        try:
            raw = path.read_bytes()[:_MAX_BYTES].decode("utf-8", errors="replace")
        except OSError:
            return
        if path.suffix.lower() in (".html", ".htm"):
            raw = re.sub(r"<[^>]+>", " ", raw)
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n|\n(?=- )", raw) if p.strip()]
        self.db.execute("BEGIN")
        try:
            self.db.execute("DELETE FROM chunks WHERE path = ?", (rel,))
            self.db.executemany("INSERT INTO chunks (path, text) VALUES (?, ?)", [(rel, p[:4000]) for p in paragraphs])
            self.db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?)", (rel, size, mtime_ns))
            self.db.execute("COMMIT")
        except sqlite3.Error:
            self.db.execute("ROLLBACK")
            raise

    def search(self, query: str, limit: int = 3) -> list[dict]:
        """Best-matching paragraphs (BM25), with their file."""
        words = re.findall(r"\w+", query.lower())
        if not words:
            return []
        match = " OR ".join(f'"{w}"' for w in words)
        with self._lock:
            rows = self.db.execute(
                "SELECT path, snippet(chunks, 1, '', '', ' … ', 24), bm25(chunks) FROM chunks WHERE chunks MATCH ? ORDER BY bm25(chunks) LIMIT ?",
                (match, limit),
            ).fetchall()
        return [{"file": p, "text": s, "score": round(-b, 3)} for p, s, b in rows]

    def close(self) -> None:
        self.db.close()


class Search(Toolbox):
    """Local document search and SearXNG web search."""

    name = "search"

    def __init__(self, documents: Path, db_path: Path, searxng_url: str, timeout_s: float) -> None:
        self.documents = documents
        self.db_path = db_path
        self.searxng_url = searxng_url.rstrip("/")
        self.timeout_s = timeout_s
        self.index: DocumentIndex | None = None

    async def start(self) -> None:
        self.index = DocumentIndex(self.documents, self.db_path)

    async def close(self) -> None:
        if self.index:
            self.index.close()

    @tool(risk=Risk.READ_ONLY)
    def search_documents(self, query: str, limit: int = 3) -> dict:
        """Search the user's own notes and documents on this device.

        Args:
            query: Words to look for.
            limit: How many passages to return.
        """
        assert self.index is not None
        self.index.refresh()
        hits = self.index.search(query, limit)
        if not hits:
            return {"say": f"I found nothing about {query} in your documents.", "results": []}
        first = hits[0]
        return {"say": f"In {first['file']}: {first['text']}", "results": hits}

    @tool(risk=Risk.OFF_DEVICE, confirm_prompt="Search the web for {query}? The query leaves this device.")
    def web_search(self, query: str, limit: int = 3) -> dict:
        """Search the web (through the user's SearXNG server). The query leaves the device.

        Args:
            query: What to search for.
            limit: How many results.
        """
        if not self.searxng_url:
            raise ToolError("Web search is not set up.", hint="set search.searxng_url to your SearXNG server")
        try:
            r = httpx.get(f"{self.searxng_url}/search", params={"q": query, "format": "json"}, timeout=self.timeout_s)
        except httpx.TimeoutException:
            raise ToolError("The web search server did not answer in time.") from None
        except httpx.TransportError as exc:
            raise ToolError(f"I can't reach the web search server: {exc}") from None
        if r.status_code == 403:
            raise ToolError("The web search server refuses JSON output.", hint="enable the json format in SearXNG's settings.yml (search.formats)")
        if r.status_code != 200:
            raise ToolError(f"The web search server answered HTTP {r.status_code}.")
        try:
            data = r.json()
        except ValueError:
            raise ToolError("The web search server sent something that is not JSON.") from None
        results = [
            {"title": x.get("title", ""), "url": x.get("url", ""), "content": (x.get("content") or "")[:400]}
            for x in (data.get("results") or [])[:limit]
        ]
        if not results:
            answer = (data.get("answers") or [None])[0]
            if answer:
                return {"say": str(answer), "results": []}
            return {"say": f"The web has nothing on {query}.", "results": []}
        top = results[0]
        return {"say": f"{top['title']}: {top['content']}" if top["content"] else top["title"], "results": results}


@hookimpl
def register_tools(register, context: PluginContext) -> None:
    cfg = context.config.search
    register(Search(documents_dir(context), context.data_dir / "search.db", cfg.searxng_url, cfg.timeout_s))
