"""The built-in tool plugins: home control, timers, clock, calculator, search, notes.

Each is registered through the ``jarvis_assistant.tools`` entry-point group, exactly like a
third-party plugin (see ``pyproject.toml``), so they can be blocked or replaced the same way.
"""
