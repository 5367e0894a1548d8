"""Who may talk to the headless service: a token, the right Host, no foreign web page.

Loopback is not a security boundary: any web page open in the user's browser can send requests
to ``127.0.0.1``, and a DNS-rebinding page can read the answers. So the control API (and the MCP
endpoint) require, on every request but ``/health``:

* a bearer token — from ``$ASSISTANT_API_TOKEN`` (``service.token_env``) if set, else generated at
  first start into ``<data dir>/api-token`` (mode 0600, readable only by the user; the TUI and the
  CLI read it from there);
* a ``Host`` header naming this machine (loopback names, the address the service is bound to, or
  ``service.allowed_hosts``) — a rebinding page sends its own host name;
* no ``Origin`` header, unless it is one of ``service.allowed_origins`` — browsers send it on
  cross-site requests, scripts and the assistant's own clients do not;
* ``Content-Type: application/json`` on a POST — the only kind of cross-site POST a browser sends
  without asking the server first (a CORS preflight this server never grants) is a "simple" one
  (form or text), which is refused.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from pathlib import Path

from ..config import Config
from ..errors import ConfigError

__all__ = ["TOKEN_FILE", "AccessPolicy", "ensure_token", "read_token", "token_path"]

TOKEN_FILE = "api-token"


def token_path(config: Config) -> Path:
    """Where the generated token lives (``<data dir>/api-token``)."""
    return config.paths.resolved_data_dir() / TOKEN_FILE


def read_token(config: Config) -> str | None:
    """The token a client should send: the environment variable, else the token file, else None."""
    env = os.environ.get(config.service.token_env, "")
    if env:
        return env
    try:
        return token_path(config).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def ensure_token(config: Config) -> str:
    """The service's token: the environment variable, else the token file, created on first start.

    Raises:
        ConfigError: The token file cannot be created (the data folder is not writable).
    """
    existing = read_token(config)
    if existing:
        return existing
    path = token_path(config)
    token = secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(token + "\n")
    except FileExistsError:
        return read_token(config) or token
    except OSError as exc:
        raise ConfigError(f"cannot create the API token file {path}: {exc.strerror or exc}",
                          hint=f"make the data folder writable, or set ${config.service.token_env}") from None
    return token


class AccessPolicy:
    """Checks one request's token, Host, Origin and Content-Type.

    Args:
        config: ``service.host``, ``service.allowed_hosts``, ``service.allowed_origins``.
        token: The token requests must carry.
    """

    def __init__(self, config: Config, token: str) -> None:
        sc = config.service
        self.token = token.encode("utf-8")
        self.hosts = {"localhost", "127.0.0.1", "::1", sc.host.lower(), *(h.lower() for h in sc.allowed_hosts)}
        self.origins = {o.rstrip("/").lower() for o in sc.allowed_origins}

    def token_ok(self, authorization: str) -> bool:
        """``Authorization: Bearer <token>``, compared in constant time (bytes, so any header is safe)."""
        given = authorization.removeprefix("Bearer ").strip().encode("utf-8", "surrogateescape")
        return hmac.compare_digest(given, self.token)

    def host_ok(self, host: str) -> bool:
        """The ``Host`` header names this machine (any port)."""
        h = host.strip().lower()
        if h.startswith("["):
            h = h[1 : h.find("]")] if "]" in h else h
        elif h.count(":") == 1:
            h = h.split(":", 1)[0]
        if h in self.hosts:
            return True
        try:
            return ipaddress.ip_address(h).is_loopback
        except ValueError:
            return False

    def origin_ok(self, origin: str | None) -> bool:
        """No ``Origin`` (not a browser's cross-site request), or one the config allows."""
        return origin is None or origin.rstrip("/").lower() in self.origins

    def check(self, method: str, path: str, headers) -> tuple[int, str] | None:
        """None when the request may go on; else (HTTP status, why)."""
        if not self.host_ok(headers.get("Host", "")):
            return 421, "this service answers only to its own host names"
        if not self.origin_ok(headers.get("Origin")):
            return 403, "requests from web pages are not allowed"
        if path == "/health":
            return None
        if not self.token_ok(headers.get("Authorization", "")):
            return 401, "missing or wrong token"
        if method == "POST" and headers.get("Content-Type", "").split(";")[0].strip().lower() != "application/json":
            return 415, "send Content-Type: application/json"
        return None
