"""A systemd unit for the service: unprivileged user, restart policy, hardening."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

__all__ = ["unit_text"]


def unit_text(*, user: str, data_dir: Path, config: Path | None, executable: str | None = None, extra_args: str = "") -> str:
    """The ``jarvis-assistant.service`` unit.

    Args:
        user: The unprivileged account it runs as (in the ``audio`` group for the microphone).
        data_dir: Its state (models, timers, notes, conversation); the only writable path.
        config: The config file (read-only to the service; SIGHUP re-reads it).
        executable: The ``assistant`` command (default: the one running now).
    """
    exe = executable or str(Path(sys.executable).with_name("assistant"))
    args = f"--config {shlex.quote(str(config))} " if config else ""
    return f"""[Unit]
Description=Jarvis voice assistant
Documentation=https://github.com/ file:{Path(__file__).resolve().parents[2] / 'docs' / 'raspberry-pi.md'}
Wants=network-online.target sound.target
After=network-online.target sound.target

[Service]
Type=simple
User={user}
Group={user}
SupplementaryGroups=audio
Environment=ASSISTANT_DATA_DIR={data_dir}
ExecStart={exe} {args}serve {extra_args}
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=5
TimeoutStopSec=20
# hardening
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
ReadWritePaths={data_dir}
PrivateTmp=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=no
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=no
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
SystemCallArchitectures=native
CapabilityBoundingSet=
DevicePolicy=closed
DeviceAllow=char-alsa rw
DeviceAllow=/dev/snd rw

[Install]
WantedBy=multi-user.target
"""
