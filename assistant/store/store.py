"""The model store: downloads, SHA-256 verification, import, removal, and resolving names to paths.

Layout under the store root (``$ASSISTANT_MODELS_DIR`` or ``<data dir>/models``)::

    <root>/<model name>/<files>          the model's files, as the catalog lists them
    <root>/<model name>/.verified.json   size, mtime and SHA-256 of each file when last verified
    <root>/<model name>/.entry.json      for imported models the catalog does not know
    <root>/pins.json                     SHA-256s pinned by first downloads (no published hash)
    <root>/licences-shown.json           restrictive licences already shown to the user

A file is only handed to an engine after its SHA-256 matched the catalog (or the pin) once; later
loads compare size and modification time with ``.verified.json`` and re-hash when they differ,
so a file changed or corrupted on disk is caught before it is loaded.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import httpx

from ..errors import ModelError
from .catalog import Catalog, ModelEntry, ModelFile, load_catalog

__all__ = ["ModelStatus", "ModelStore", "Progress", "sha256_file"]

_CHUNK = 1 << 20

Progress = Callable[[str, int, int | None], None]
"""Progress callback: (file label, bytes done, total bytes or None)."""


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, lower-case hex (reads 1 MiB at a time)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _looks_valid(path: Path) -> bool:
    """Cheap format check for files that have no published hash."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    name = path.name
    if name.endswith(".gguf"):
        return head[:4] == b"GGUF"
    if name.endswith(".onnx"):
        return len(head) > 0 and head[0] == 0x08  # protobuf field 1 (ir_version), varint
    if name.endswith(".json"):
        try:
            json.loads(path.read_text(encoding="utf-8"))
            return True
        except (ValueError, OSError):
            return False
    return len(head) > 0


@dataclass
class ModelStatus:
    """What the store holds of one model."""

    name: str
    kind: str
    installed: bool
    """Every file is present."""
    verified: bool
    """Every file matched its SHA-256 (or pin) at the last check and is unchanged since."""
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    bytes_on_disk: int = 0


class ModelStore:
    """Models on this machine.

    Args:
        root: The store folder (created on first write).
        catalog: The catalog; default: the bundled one.
    """

    def __init__(self, root: Path, catalog: Catalog | None = None) -> None:
        self.root = Path(root)
        self.catalog = catalog or load_catalog()
        self.refused: list[str] = []
        """Files the last :meth:`import_path` refused."""

    # ------------------------------------------------------------------ bookkeeping

    def model_dir(self, name: str) -> Path:
        """The folder of model ``name`` inside the store.

        Raises:
            ModelError: The name is not a plain model name ("../x", "/etc", "a/b"): every store
                path stays inside the store root.
        """
        if not _MODEL_NAME.fullmatch(name or ""):
            raise ModelError(f"'{name}' is not a model name", hint="model names are letters, digits, '.', '_' and '-' (see `assistant models list`)")
        path = (self.root / name).resolve()
        if path.parent != self.root.resolve():
            raise ModelError(f"'{name}' points outside the model store {self.root}")
        return self.root / name

    def _read_json(self, path: Path) -> dict:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def _write_json(self, path: Path, data: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise ModelError(f"cannot write {path}: {exc}", hint="free some disk space or check permissions") from None

    @property
    def pins(self) -> dict[str, str]:
        """Pinned SHA-256s, keyed ``"<model>/<file>"``."""
        return self._read_json(self.root / "pins.json")

    def _pin(self, key: str, digest: str) -> None:
        pins = self.pins
        pins[key] = digest
        self._write_json(self.root / "pins.json", pins)

    def expected_sha(self, entry: ModelEntry, f: ModelFile) -> str | None:
        """The catalog's SHA-256 for a file, else the pinned one, else None."""
        return f.sha256 or self.pins.get(f"{entry.name}/{f.path}")

    def entry(self, name: str) -> ModelEntry:
        """The catalog entry, or the entry recorded for an imported custom model.

        Raises:
            ModelError: Unknown name.
        """
        if name in self.catalog.entries:
            return self.catalog.entries[name]
        custom = self.model_dir(name) / ".entry.json"
        if custom.exists():
            raw = self._read_json(custom)
            mdir = self.model_dir(name)
            for rel in [raw.get("main", "."), *raw.get("files", {})]:
                if not inside(mdir, mdir / str(rel)):
                    raise ModelError(f"model '{name}' lists a file outside its folder ({rel})", hint=f"remove it: assistant models remove {name}")
            return ModelEntry(
                name=name, kind=raw["kind"], engine=raw.get("engine", ""), description=raw.get("description", "imported"),
                license=raw.get("license", "unknown"), restrictive=False, language=raw.get("language", ""),
                tiers=(), main=raw["main"],
                files=tuple(ModelFile(path=p, url="", size=None, sha256=s) for p, s in raw["files"].items()),
            )
        return self.catalog.get(name)  # raises with suggestions

    def installed_names(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    # ------------------------------------------------------------------ verification

    def status(self, name: str, *, rehash: bool = False) -> ModelStatus:
        """Check one model's files.

        Args:
            name: Model name.
            rehash: Hash every file even when size and mtime match the last verification.
        """
        entry = self.entry(name)
        mdir = self.model_dir(name)
        manifest = self._read_json(mdir / ".verified.json").get("files", {})
        st = ModelStatus(name=name, kind=entry.kind, installed=True, verified=True)
        new_manifest = {}
        for f in entry.files:
            p = mdir / f.path
            if not p.exists():
                st.installed = st.verified = False
                st.missing.append(f.path)
                continue
            stat = p.stat()
            st.bytes_on_disk += stat.st_size
            rec = manifest.get(f.path)
            expected = self.expected_sha(entry, f)
            unchanged = rec and rec.get("size") == stat.st_size and rec.get("mtime_ns") == stat.st_mtime_ns
            if unchanged and not rehash and (expected is None or rec.get("sha256") == expected):
                new_manifest[f.path] = rec
                continue
            if f.size is not None and stat.st_size != f.size:
                st.verified = False
                st.problems.append(f"{f.path}: {stat.st_size} bytes, catalog says {f.size}")
                continue
            digest = sha256_file(p)
            if expected is not None and digest != expected:
                st.verified = False
                st.problems.append(f"{f.path}: SHA-256 {digest[:12]}… does not match the expected {expected[:12]}…")
                continue
            if expected is None and not _looks_valid(p):
                st.verified = False
                st.problems.append(f"{f.path}: not a valid {p.suffix} file")
                continue
            new_manifest[f.path] = {"sha256": digest, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        if st.installed and st.verified:
            if new_manifest != manifest:
                self._write_json(mdir / ".verified.json", {"files": new_manifest, "verified_at": time.time()})
        elif (mdir / ".verified.json").exists() and st.problems:
            (mdir / ".verified.json").unlink(missing_ok=True)
        return st

    def is_ready(self, name: str) -> bool:
        """Installed and verified (cheap when nothing changed since the last check)."""
        if not self.model_dir(name).is_dir():
            return False
        try:
            st = self.status(name)
        except ModelError:
            return False
        return st.installed and st.verified

    def resolve(self, ref: str, kind: str) -> Path:
        """Turn a config value (catalog name or path) into the path an engine loads.

        Catalog models must be installed and verified; paths are used as they are.

        Args:
            ref: A model name from the catalog or the store, or a file/folder path.
            kind: The kind expected (``"asr"``, ``"tts"``, ``"llm"``, ``"wake"``, ``"wake_features"``, ``"turn"``).

        Raises:
            ModelError: The path does not exist, the model is not installed, is of another kind,
                or fails verification (it is then never loaded).
        """
        if ref == "auto":
            raise ModelError(f'the {kind} model is "auto" here; it must be chosen first', hint="this is a bug: call app.choose_models()")
        if _is_path(ref):
            p = Path(ref).expanduser()
            if not p.exists():
                raise ModelError(f"{kind} model {p} does not exist", hint="check the path in the config, or use a catalog name")
            return p
        entry = self.entry(ref)
        if entry.kind != kind:
            raise ModelError(f"model '{ref}' is a {entry.kind} model, not a {kind} model", hint="`assistant models list` shows kinds")
        st = self.status(ref)
        if not st.installed:
            raise ModelError(
                f"model '{ref}' is not installed in {self.root} (missing: {', '.join(st.missing)})",
                hint=f"run: assistant models pull {ref}   (or `assistant models import PATH` for files you have)",
            )
        if not st.verified:
            raise ModelError(
                f"model '{ref}' failed verification and will not be loaded: {'; '.join(st.problems)}",
                hint=f"fetch it again with: assistant models pull {ref}",
            )
        return self.model_dir(ref) / entry.main if entry.main != "." else self.model_dir(ref)

    # ------------------------------------------------------------------ licences

    def licence_notice(self, name: str) -> str | None:
        """The licence text to show before a restrictive model is first used, or None.

        Marks it shown, so the notice appears once per store.
        """
        if _is_path(name):
            return None
        try:
            entry = self.entry(name)
        except ModelError:
            return None
        if not entry.restrictive:
            return None
        shown_path = self.root / "licences-shown.json"
        shown = self._read_json(shown_path)
        if shown.get(name):
            return None
        shown[name] = time.time()
        try:
            self._write_json(shown_path, shown)
        except ModelError:
            pass
        return f"licence notice: model '{name}' is licensed {entry.license}. Make sure your use complies."

    # ------------------------------------------------------------------ pull / import / remove

    def pull(
        self,
        name: str,
        *,
        client: httpx.Client | None = None,
        progress: Progress | None = None,
        on_pin: Callable[[str, str], None] | None = None,
        retries: int = 3,
    ) -> ModelStatus:
        """Download a model's missing or bad files, resuming partial downloads, and verify them.

        Args:
            name: Catalog name.
            client: HTTP client (a default one follows redirects).
            progress: Called as bytes arrive.
            on_pin: Called with (file, sha256) when a file without a published hash is pinned.
            retries: Attempts per file on network errors (with exponential backoff).

        Raises:
            ModelError: Not found (404), checksum mismatch (the bad file is deleted), disk full
                (the partial file is kept for resuming), network down.
        """
        entry = self.catalog.get(name)
        mdir = self.model_dir(name)
        mdir.mkdir(parents=True, exist_ok=True)
        st = self.status(name)
        if st.installed and st.verified:
            return st
        own_client = client is None
        client = client or httpx.Client(follow_redirects=True, timeout=httpx.Timeout(30.0, read=60.0))
        try:
            remaining = sum((f.size or 0) for f in entry.files if not (mdir / f.path).exists())
            free = shutil.disk_usage(mdir).free
            if remaining and free < remaining:
                raise ModelError(
                    f"not enough disk space for '{name}': {remaining:,} bytes needed, {free:,} free in {mdir}",
                    hint="free some space, or move the store with ASSISTANT_MODELS_DIR / paths.models_dir",
                )
            for f in entry.files:
                dest = mdir / f.path
                if dest.exists():
                    one = self._check_file(entry, f, dest)
                    if one is None:
                        continue
                    dest.unlink()  # wrong size or hash: fetch again
                from .download import download_file  # noqa: PLC0415

                digest = download_file(client, f.url, dest, size=f.size, label=f"{name}/{f.path}", progress=progress, retries=retries)
                expected = self.expected_sha(entry, f)
                if expected is not None and digest != expected:
                    dest.unlink(missing_ok=True)
                    raise ModelError(
                        f"{name}/{f.path} downloaded from {f.url} has SHA-256 {digest}, expected {expected}; "
                        "the file was deleted and will not be used",
                        hint="the server may have changed the file or the download was tampered with; report it",
                    )
                if expected is None:
                    if not _looks_valid(dest):
                        dest.unlink(missing_ok=True)
                        raise ModelError(f"{name}/{f.path} from {f.url} is not a valid {dest.suffix} file; deleted")
                    self._pin(f"{name}/{f.path}", digest)
                    if on_pin:
                        on_pin(f"{name}/{f.path}", digest)
        finally:
            if own_client:
                client.close()
        st = self.status(name, rehash=True)
        if not st.verified:
            raise ModelError(f"model '{name}' failed verification after download: {'; '.join(st.problems)}")
        return st

    def _check_file(self, entry: ModelEntry, f: ModelFile, path: Path) -> str | None:
        size = path.stat().st_size
        if f.size is not None and size != f.size:
            return "size"
        expected = self.expected_sha(entry, f)
        if expected is not None and sha256_file(path) != expected:
            return "sha256"
        return None

    def remove(self, name: str) -> int:
        """Delete a model's folder. Returns the bytes freed.

        Raises:
            ModelError: The model is not in the store.
        """
        mdir = self.model_dir(name)
        if not mdir.is_dir() or name.startswith("."):
            raise ModelError(f"model '{name}' is not in the store {self.root}", hint="`assistant models list` shows what is installed")
        freed = sum(p.stat().st_size for p in mdir.rglob("*") if p.is_file())
        shutil.rmtree(mdir)
        return freed

    def import_path(self, path: Path, *, name: str | None = None, kind: str | None = None) -> list[str]:
        """Adopt model files the user already has.

        Files are recognised by SHA-256 against the catalog and copied into place; a model is
        imported once all its files are found. A file named like a catalog file but with another
        hash is refused. Unknown files need ``name`` and ``kind`` and become a custom model.

        Args:
            path: A file, or a folder searched recursively.
            name: Name for an unknown (custom) model.
            kind: Its kind.

        Returns:
            Names of the models imported or completed. Files refused (a catalog name with another
            hash) are listed in :attr:`refused` when other files were imported.

        Raises:
            ModelError: Nothing recognised, a known file name with a wrong hash, or a write error.
        """
        path = Path(path).expanduser()
        if not path.exists():
            raise ModelError(f"{path} does not exist", hint="give a model file or a folder holding model files")
        files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
        by_sha: dict[str, list[tuple[ModelEntry, ModelFile]]] = {}
        by_name: dict[str, list[tuple[ModelEntry, ModelFile]]] = {}
        for entry in self.catalog.entries.values():
            for f in entry.files:
                sha = self.expected_sha(entry, f)
                if sha:
                    by_sha.setdefault(sha, []).append((entry, f))
                by_name.setdefault(Path(f.path).name, []).append((entry, f))
        touched: set[str] = set()
        unknown: list[Path] = []
        self.refused = []
        planned: dict[str, list[tuple[Path, ModelFile, bool]]] = {}
        for p in files:
            size = p.stat().st_size
            candidates_by_name = by_name.get(p.name, [])
            if not any(f.size in (None, size) for _, f in candidates_by_name) and not any(
                f.size == size for fs in by_sha.values() for _, f in fs
            ):
                unknown.append(p)
                continue
            digest = sha256_file(p)
            matches = by_sha.get(digest, [])
            if not matches:
                # a catalog file with no published hash: adopt it if size and format fit, and pin it
                unpinned = [
                    (e, f) for e, f in candidates_by_name
                    if self.expected_sha(e, f) is None and f.size in (None, size) and _looks_valid(p)
                ]
                for entry, f in unpinned:
                    self._pin(f"{entry.name}/{f.path}", digest)
                matches = unpinned
            if not matches:
                if candidates_by_name:
                    owners = ", ".join(sorted({e.name for e, _ in candidates_by_name}))
                    self.refused.append(
                        f"{p} is named like a file of {owners} but its SHA-256 ({digest[:12]}…) matches none of them; not imported"
                    )
                    continue
                unknown.append(p)
                continue
            same_name = [(e, f) for e, f in matches if Path(f.path).name == p.name]
            for entry, f in matches:
                # a file "belongs" to a model when only that model has it, or only that model
                # has it under this file name (shared files like Whisper's tokenizer belong to none)
                unique = len(matches) == 1 or (len(same_name) == 1 and same_name[0][0] is entry)
                planned.setdefault(entry.name, []).append((p, f, unique))
        # Files shared by several models (Whisper's tokenizer) only complete a model that is
        # already in the store or whose own files are imported too.
        for model_name, items in planned.items():
            if not any(unique for _, _, unique in items) and not self.model_dir(model_name).exists():
                continue
            for src, f, _ in items:
                dest = self.model_dir(model_name) / f.path
                dest.parent.mkdir(parents=True, exist_ok=True)
                if not dest.exists() or dest.stat().st_size != src.stat().st_size:
                    _copy(src, dest)
                touched.add(model_name)
        if unknown and name:
            if not kind:
                raise ModelError(f"importing unknown files as '{name}' needs --kind", hint="one of: wake, asr, tts, llm")
            mdir = self.model_dir(name)
            record = {}
            for p in unknown:
                rel = p.relative_to(path) if path.is_dir() else Path(p.name)
                dest = mdir / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                _copy(p, dest)
                record[str(rel)] = sha256_file(dest)
            main = "." if path.is_dir() and kind == "asr" else str(next(iter(record)))
            if kind in ("llm",) or kind == "tts":
                main = next((r for r in record if r.endswith((".gguf", ".onnx"))), main)
            self._write_json(mdir / ".entry.json", {"kind": kind, "main": main, "files": record, "license": "unknown (imported)"})
            touched.add(name)
        elif not touched:
            if self.refused:
                raise ModelError(
                    "; ".join(self.refused),
                    hint="the file may be corrupt or another version; `assistant models pull` fetches the verified one",
                )
            raise ModelError(
                f"no file under {path} matches a model in the catalog",
                hint="to adopt your own model, give --name NAME --kind KIND",
            )
        for n in touched:
            self.status(n, rehash=True)
        return sorted(touched)


def _copy(src: Path, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".importing")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise ModelError(f"disk full while copying {src} into the store", hint="free some space") from None
        raise ModelError(f"cannot copy {src} to {dest}: {exc}") from None


_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def inside(root: Path, path: Path) -> bool:
    """Whether ``path`` (resolved, symlinks followed) is ``root`` or lies under it."""
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _is_path(ref: str) -> bool:
    return ref.startswith(("/", ".", "~")) or os.sep in ref or ref.endswith((".onnx", ".gguf", ".bin"))
