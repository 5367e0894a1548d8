"""Errors the user can act on.

Every expected failure (a corrupt WAV, a missing model, no audio device, a bad config value) is
raised as an :class:`AssistantError` carrying two sentences: what went wrong (naming the file,
device or key) and what to do about it. The CLI prints both and exits non-zero without a
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "AssistantError",
    "AudioDeviceError",
    "AudioFileError",
    "ConfigError",
    "MissingDependencyError",
    "ModelError",
    "NeedsClarification",
    "ToolError",
    "require",
]


class AssistantError(Exception):
    """An expected failure with a message for the user and a hint of what to do.

    Attributes:
        message: What went wrong, naming the file, device, model or key involved.
        hint: What the user can do about it (one sentence), or "".
        exit_code: The process exit code the CLI uses for this error.
    """

    exit_code = 2

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class ConfigError(AssistantError):
    """The configuration file or a command-line option is invalid."""


class AudioFileError(AssistantError):
    """An audio file is missing, empty, corrupt or in an unsupported format."""


class AudioDeviceError(AssistantError):
    """An audio device is missing, busy or refuses the requested format."""

    exit_code = 3


class ModelError(AssistantError):
    """A model file is missing, unverified or corrupt."""

    exit_code = 4


class MissingDependencyError(AssistantError):
    """An optional backend is not installed; the hint gives the install command."""

    exit_code = 5


class ToolError(AssistantError):
    """A tool is unknown, was given bad arguments, or failed."""


class NeedsClarification(ToolError):
    """A request fits several things equally; the user is asked which one.

    Raised by a tool (the home tools, when "the lamp" could be two lamps) before it changes
    anything. The router says :attr:`message` (the question) and, when the user answers, calls
    the same tool again with the arguments of the chosen option merged in.

    Attributes:
        options: One argument override per choice, e.g. ``{"name": "light.desk_lamp"}``.
        labels: How each choice is said, in the same order, e.g. ``"the desk lamp"``.
    """

    def __init__(self, question: str, options: list[dict], labels: list[str]) -> None:
        super().__init__(question)
        self.options = options
        self.labels = labels


def require(module: str, extra: str, what: str):
    """Import an optional backend, or explain which extra to install.

    Args:
        module: The module to import, e.g. ``"faster_whisper"``.
        extra: The project's optional extra that provides it, e.g. ``"asr"``.
        what: What the module is for, for the message, e.g. ``"speech recognition"``.

    Returns:
        The imported module.

    Raises:
        MissingDependencyError: The module is not installed.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{what} needs the Python package that provides '{module}', which is not installed "
            f"({exc}).",
            hint=f"install it with: pip install 'jarvis-assistant[{extra}]'",
        ) from exc
