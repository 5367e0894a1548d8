"""The desktop TUI (Textual): `assistant tui`.

A thin client of the assistant's event stream: see :class:`tui.app.JarvisApp`.
"""

from .app import JarvisApp

__all__ = ["JarvisApp"]
