"""Resumable HTTP downloads with SHA-256 computed on the way.

A download writes ``<dest>.part`` and renames it when complete. A ``.part`` left by an
interrupted download is resumed with an HTTP ``Range`` request; a server that ignores the range
(answers 200) restarts it. Network errors are retried with exponential backoff (tenacity); each
retry resumes where the previous attempt stopped.
"""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path
from typing import Callable

import httpx
import tenacity

from ..errors import ModelError

__all__ = ["download_file"]

_CHUNK = 1 << 16


class _Retryable(Exception):
    pass


def download_file(
    client: httpx.Client,
    url: str,
    dest: Path,
    *,
    size: int | None,
    label: str,
    progress: Callable[[str, int, int | None], None] | None = None,
    retries: int = 3,
) -> str:
    """Download ``url`` to ``dest``, resuming ``dest.part`` if present.

    Args:
        client: The HTTP client.
        url: Source URL.
        dest: Final path (written only when the download completed).
        size: Expected bytes, or None.
        label: Name for progress and messages.
        progress: Callback (label, bytes done, total).
        retries: Attempts on network errors and 5xx answers.

    Returns:
        The SHA-256 (hex) of the complete file.

    Raises:
        ModelError: HTTP 404/4xx, repeated network failure, disk full (the ``.part`` is kept so a
            later pull resumes), or the server sent more bytes than expected.
    """
    part = dest.with_name(dest.name + ".part")

    def attempt() -> None:
        have = part.stat().st_size if part.exists() else 0
        if size is not None and have > size:
            part.unlink()
            have = 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with client.stream("GET", url, headers=headers) as resp:
                if resp.status_code == 416 and size is not None and have == size:
                    return  # already complete
                if resp.status_code == 416:
                    part.unlink(missing_ok=True)
                    raise _Retryable("range not satisfiable; restarting")
                if resp.status_code >= 500:
                    raise _Retryable(f"HTTP {resp.status_code}")
                if resp.status_code >= 400:
                    raise ModelError(
                        f"downloading {label} from {url} failed: HTTP {resp.status_code} {resp.reason_phrase}",
                        hint="the file may have moved upstream; check the catalog URL or import the file with `assistant models import`",
                    )
                mode = "ab" if resp.status_code == 206 and have else "wb"
                done = have if mode == "ab" else 0
                total = size
                if total is None:
                    length = resp.headers.get("content-length")
                    total = (int(length) + done) if length else None
                with open(part, mode) as f:
                    for chunk in resp.iter_bytes(_CHUNK):
                        f.write(chunk)
                        done += len(chunk)
                        if progress:
                            progress(label, done, total)
                        if size is not None and done > size:
                            raise ModelError(f"{url} sent more than the {size} bytes the catalog lists for {label}")
                if size is not None and done < size:
                    raise _Retryable(f"connection closed after {done} of {size} bytes")
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                free_hint = "free some space (the partial download is kept and resumes next time)"
                raise ModelError(f"disk full while downloading {label} to {dest.parent}", hint=free_hint) from None
            raise
        except httpx.TransportError as exc:
            raise _Retryable(str(exc)) from exc

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(max(1, retries)),
        wait=tenacity.wait_exponential(multiplier=0.5, max=8),
        retry=tenacity.retry_if_exception_type(_Retryable),
        reraise=True,
    )
    try:
        retrying(attempt)
    except _Retryable as exc:
        raise ModelError(
            f"downloading {label} from {url} failed after {retries} attempts: {exc}",
            hint="check the network connection; the partial download is kept and `assistant models pull` resumes it",
        ) from None
    h = hashlib.sha256()
    with open(part, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    os.replace(part, dest)
    return h.hexdigest()
