"""Widgets of the Jarvis TUI. They only display what they are given; no pipeline logic here."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Label, ProgressBar, RichLog, Static

from assistant.events import (
    ConfirmationRequested,
    ErrorEvent,
    Event,
    FinalTranscript,
    RemoteCall,
    Reply,
    RouteDecided,
    ToolCallFinished,
    ToolCallStarted,
    WakeDetected,
    WakeRejected,
)

__all__ = ["ConfirmDialog", "ConversationLog", "LatencyTable", "LevelMeter", "STATE_LABELS"]

STATE_LABELS = {
    "starting": "◌ starting…",
    "idle": "● idle — say the wake word, or type",
    "listening": "◉ listening",
    "wake_detected": "◉ wake word",
    "transcribing": "◍ transcribing",
    "thinking": "◍ thinking",
    "calling_tool": "⚙ calling a tool",
    "speaking": "♪ speaking",
    "muted": "✕ microphone muted",
}

LATENCY_STAGES = [
    ("endpoint", "endpointing (trailing silence)"),
    ("asr", "speech recognition"),
    ("fast_path", "fast path"),
    ("llm_first_token", "LLM first token"),
    ("llm", "LLM total"),
    ("remote", "remote model"),
    ("tool", "tools"),
    ("tts_first_audio", "TTS first audio"),
    ("first_audio", "utterance end → first audio"),
]


class LevelMeter(Horizontal):
    """Microphone level in dBFS (-60 … 0)."""

    def compose(self) -> ComposeResult:
        yield Label("mic ")
        yield ProgressBar(total=60, show_eta=False, show_percentage=False, id="level-bar")

    def set_level(self, dbfs: float) -> None:
        """Show a level in dBFS (clamped to -60…0). Does nothing once the bar is gone (the app closing)."""
        bars = self.query(ProgressBar)
        if not bars:
            return
        bars.first().update(progress=max(0.0, min(60.0, dbfs + 60.0)))


class ConversationLog(RichLog):
    """What was heard, the route, tool calls with arguments and results, and the reply."""

    def show(self, e: Event) -> None:
        if isinstance(e, WakeDetected):
            self.write(Text(f"— wake word {e.model} ({e.score:.2f}) at {e.audio_time_s:.1f} s", style="dim"))
        elif isinstance(e, WakeRejected):
            self.write(Text(f"— wake word rejected by the second pass (heard {e.verify_text!r})", style="dim"))
        elif isinstance(e, FinalTranscript):
            if e.text:
                self.write(Text.assemble(("you     ", "bold cyan"), e.text))
        elif isinstance(e, RouteDecided):
            style = {"fast_path": "green", "local_llm": "yellow", "remote": "bold red", "none": "magenta"}.get(e.route, "")
            self.write(Text.assemble(("route   ", "dim"), (e.route, style), (f"  {e.reason}", "dim")))
        elif isinstance(e, ToolCallStarted):
            args = ", ".join(f"{k}={v!r}" for k, v in e.arguments.items() if v not in (None, [], ""))
            self.write(Text.assemble(("tool    ", "dim"), (f"{e.tool}({args})", "bold")))
        elif isinstance(e, ToolCallFinished):
            if e.ok:
                result = e.result.get("say") if isinstance(e.result, dict) and "say" in e.result else e.result
                self.write(Text.assemble(("result  ", "dim"), (str(result)[:200], "green")))
            else:
                self.write(Text.assemble(("result  ", "dim"), (e.error, "red")))
        elif isinstance(e, ConfirmationRequested):
            self.write(Text.assemble(("confirm ", "dim"), (e.prompt, "yellow")))
        elif isinstance(e, RemoteCall):
            tokens = f"{e.prompt_tokens}+{e.completion_tokens} tokens" if e.ok else e.error
            self.write(Text.assemble(("⇪ left the device ", "bold red"), f"to {e.endpoint} ({e.url}) — {tokens} — see the Remote tab"))
        elif isinstance(e, Reply):
            if e.text:
                self.write(Text.assemble(("jarvis  ", "bold magenta"), e.text))
        elif isinstance(e, ErrorEvent):
            self.write(Text.assemble(("error   ", "bold red"), f"{e.stage}: {e.message}"))


class LatencyTable(DataTable):
    """Where the time of the last turn went, per stage."""

    def on_mount(self) -> None:
        self.add_columns("stage", "ms")
        self.cursor_type = "none"

    def show_turn(self, timings: dict[str, float]) -> None:
        self.clear()
        for key, label in LATENCY_STAGES:
            if key in timings:
                self.add_row(label, f"{timings[key]:8.0f}")


class ConfirmDialog(ModalScreen[bool]):
    """Yes/no for a risky tool call or a remote request."""

    BINDINGS = [("y", "answer(True)", "Yes"), ("n", "answer(False)", "No"), ("escape", "answer(False)", "No")]

    def __init__(self, question: str, risk: str = "") -> None:
        super().__init__()
        self.question = question
        self.risk = risk

    def compose(self) -> ComposeResult:
        from textual.containers import Vertical  # noqa: PLC0415

        with Vertical(id="dialog"):
            yield Static(self.question, id="dialog-question")
            if self.risk:
                yield Static(self.risk, id="dialog-risk")
            with Horizontal(id="dialog-buttons"):
                yield Button("No", id="no", variant="default")
                yield Button("Yes", id="yes", variant="warning")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


def area_rows(rows: list[dict[str, str]]) -> list[tuple[str, str, str, str]]:
    """(area, name, kind, state) table rows of :func:`tools.home.tools.home_rows`."""
    return [(r["area"], r["name"], r["kind"], r["state"]) for r in rows]
