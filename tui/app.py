"""The Jarvis desktop TUI: a thin client of a session's event stream.

The session is either this process's own :class:`~assistant.session.Session` or, with
``assistant tui --connect URL``, a :class:`~assistant.service.client.RemoteSession` attached to a
running ``assistant serve`` over its control API: the TUI reads the same members of both (the
bus, ``ask``, ``interrupt``, the home, the timers, the level), so it shows the same live view.

Heavy work (loading models, the voice loop, answering typed requests) runs in Textual workers;
the widgets only render events read from the session's bus. Settings changes are validated
through the config model and saved to the config file (a running service's settings are its own).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from textual.css.query import NoMatches
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Select, Static, TabbedContent, TabPane

from assistant.config import Config, save_config
from assistant.errors import AssistantError
from assistant.events import (
    Event,
    PartialTranscript,
    RemoteCall,
    StateChanged,
    TimerFired,
    ToolCallFinished,
    TurnFinished,
)
from assistant.engine.timing import TurnTimings
from assistant.service.client import RemoteSession
from assistant.session import Session, SessionOptions
from assistant.toolkit.registry import ConfirmationRequest

from .widgets import STATE_LABELS, ConfirmDialog, ConversationLog, LatencyTable, LevelMeter, area_rows

__all__ = ["JarvisApp"]


class JarvisApp(App):
    """The TUI.

    Args:
        config: The configuration.
        options: Audio in/out for the session.
        config_path: Where settings are saved.
        session: The session to show (default: a new one in this process, from ``config`` and
            ``options``; a :class:`~assistant.service.client.RemoteSession` shows a running service).
    """

    CSS_PATH = "jarvis.tcss"
    TITLE = "Jarvis"
    BINDINGS = [
        Binding("ctrl+t", "push_to_talk", "Talk"),
        Binding("escape", "interrupt", "Stop speaking"),
        Binding("ctrl+m", "toggle_mute", "Mute", show=True),
        Binding("f12", "save_screenshot", "Screenshot", show=False),
        Binding("ctrl+q", "quit", "Quit"),
    ]

    def __init__(self, config: Config, options: SessionOptions | None = None, *, config_path: Path | None = None,
                 session: Session | RemoteSession | None = None) -> None:
        super().__init__()
        self.config = config
        self.config_path = config_path
        self.session = session or Session(config, options or SessionOptions())
        self.session.set_confirm(self._confirm)
        self.timings = TurnTimings()
        """The same per-turn aggregation the service's API and logs use, fed from the event stream."""
        self._muted = False
        self.ready = asyncio.Event()
        self.start_error: str | None = None

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with Horizontal(id="main"):
            with Vertical(id="left"):
                with Horizontal(id="status"):
                    yield Static(STATE_LABELS["starting"], id="state")
                    yield Static("", id="remote-marker")
                    yield LevelMeter(id="level")
                yield ConversationLog(id="conversation", wrap=True, markup=False, highlight=False)
                yield Static("", id="partial")
                yield Input(placeholder="Type a request and press Enter (ctrl+t: talk, esc: stop speaking)", id="request")
            with TabbedContent(id="right"):
                with TabPane("Latency", id="tab-latency"):
                    yield Static("Per-stage time of the last turn, in milliseconds.", classes="panel-note")
                    yield LatencyTable(id="latency")
                with TabPane("Home", id="tab-home"):
                    yield DataTable(id="home")
                with TabPane("Timers", id="tab-timers"):
                    yield DataTable(id="timers")
                with TabPane("Tools", id="tab-tools"):
                    yield DataTable(id="tools")
                with TabPane("Models", id="tab-models"):
                    yield DataTable(id="models")
                with TabPane("Audio", id="tab-audio"):
                    yield Static("", id="devices", classes="panel-note")
                    with Horizontal(classes="setting"):
                        yield Label("Wake threshold")
                        yield Input(str(self.config.wake.threshold), id="threshold")
                        yield Button("Save", id="save-threshold")
                with TabPane("Remote", id="tab-remote"):
                    with Horizontal(classes="setting"):
                        yield Label("Remote policy")
                        yield Select([(p, p) for p in ("never", "ask", "allowed")], value=self.config.remote.policy, allow_blank=False, id="policy")
                    yield Static("", id="settings-status", classes="panel-note")
                    yield Static("What left the device (newest last):", classes="panel-note")
                    yield DataTable(id="audit")
        yield Footer()

    @property
    def main_screen(self):
        """The screen the panels live on (a confirmation dialog may be on top of it; querying the
        app would search the dialog)."""
        return self.screen_stack[0]

    def _panel(self, selector: str) -> DataTable | None:
        """A panel's table, or None while the app is closing (a refresh may finish after the screen is gone)."""
        try:
            return self.main_screen.query_one(selector, DataTable)
        except NoMatches:
            return None

    def on_mount(self) -> None:
        home = self.main_screen.query_one("#home", DataTable)
        home.add_columns("area", "device", "kind", "state")
        home.cursor_type = "row"
        self.main_screen.query_one("#timers", DataTable).add_columns("timer", "left", "state")
        self.main_screen.query_one("#models", DataTable).add_columns("kind", "model")
        self.main_screen.query_one("#tools", DataTable).add_columns("tool", "from", "risk", "server")
        self.main_screen.query_one("#audit", DataTable).add_columns("time", "endpoint", "sent", "tokens")
        self.start_session()

    # ------------------------------------------------------------------ session workers

    @work(exclusive=True, group="session")
    async def start_session(self) -> None:
        try:
            await self.session.start()
        except AssistantError as exc:
            self.start_error = f"{exc.message}" + (f" — {exc.hint}" if exc.hint else "")
            self.main_screen.query_one("#state", Static).update(f"✕ cannot start: {self.start_error}")
            self.ready.set()
            return
        queue = self.session.bus.queue()
        for part, why in (getattr(self.session, "problems", None) or {}).items():
            self.notify(f"without {part}: {why}", severity="warning", timeout=15)  # started with what works
        self._show_state(self.session.state if self.session.remote else "idle")
        self.refresh_panels()
        self.session.on_home_change(lambda: self.call_later(self.refresh_home))
        self.set_interval(0.1, self._poll_level)
        self.set_interval(1.0, self.refresh_timers)
        self.ready.set()
        if self.session.has_voice:
            self.voice_loop()
        while True:
            event = await queue.get()
            self.timings(event)
            try:
                self.on_assistant_event(event)
            except NoMatches:  # an event arriving while the app closes: the panels are gone
                return

    @work(group="voice")
    async def voice_loop(self) -> None:
        try:
            await self.session.run_voice()
        except AssistantError as exc:
            self.main_screen.query_one(ConversationLog).write(f"error: {exc.message}")

    @work(group="requests")
    async def ask(self, text: str) -> None:
        try:
            await self.session.ask(text)
        except AssistantError as exc:
            self.main_screen.query_one(ConversationLog).write(f"error: {exc.message}" + (f" — {exc.hint}" if exc.hint else ""))

    # ------------------------------------------------------------------ events → widgets

    def on_assistant_event(self, event: Event) -> None:
        log = self.main_screen.query_one(ConversationLog)
        log.show(event)
        if isinstance(event, StateChanged):
            self._show_state(event.state.value)
        elif isinstance(event, PartialTranscript):
            self.main_screen.query_one("#partial", Static).update(f"… {event.text}")
        elif isinstance(event, ToolCallFinished):
            self.refresh_timers()
        elif isinstance(event, TurnFinished):
            self.main_screen.query_one("#partial", Static).update("")
            self.main_screen.query_one(LatencyTable).show_turn(self.timings.of(event.turn))
        elif isinstance(event, RemoteCall):
            self.main_screen.query_one("#remote-marker", Static).update("⇪ REMOTE")
            self.refresh_audit()
        elif isinstance(event, TimerFired):
            log.write(f"⏰ {event.name} is done")

    def _show_state(self, state: str) -> None:
        w = self.main_screen.query_one("#state", Static)
        if self._muted:
            state = "muted"
        w.update(STATE_LABELS.get(state, state))
        w.set_classes(state)

    def _poll_level(self) -> None:
        try:
            meter = self.main_screen.query_one(LevelMeter)
        except NoMatches:  # the app is closing: its widgets are gone before the interval stops
            return
        meter.set_level(self.session.level_dbfs)

    # ------------------------------------------------------------------ panels

    def refresh_panels(self) -> None:
        self.refresh_home()
        self.refresh_timers()
        self.refresh_models()
        self.refresh_tools()
        self.refresh_devices()
        self.refresh_audit()

    @work(group="home", exclusive=True)
    async def refresh_home(self) -> None:
        rows = await self.session.home_rows()
        table = self._panel("#home")
        if table is None:
            return
        table.clear()
        for row in area_rows(rows or []):
            table.add_row(*row)

    @work(group="timers", exclusive=True)
    async def refresh_timers(self) -> None:
        timers = await self.session.timers()
        table = self._panel("#timers")
        if table is None:
            return
        table.clear()
        for t in timers:
            left = int(t["left_s"])
            table.add_row(t["label"], f"{left // 60}:{left % 60:02d}", "paused" if t["paused"] else "running")

    @work(group="tools", exclusive=True)
    async def refresh_tools(self) -> None:
        rows = await self.session.tools()
        table = self._panel("#tools")
        if table is None:
            return
        table.clear()
        for r in rows:
            table.add_row(r["name"], r["source"], r["risk"], r["state"])

    @work(group="models", exclusive=True)
    async def refresh_models(self) -> None:
        models = await self.session.models()
        table = self._panel("#models")
        if table is None:
            return
        table.clear()
        for kind in ("wake", "asr", "llm", "tts"):
            table.add_row(kind, models.get(kind, ""))

    def refresh_devices(self) -> None:
        if self.session.remote:
            self.main_screen.query_one("#devices", Static).update(f"attached to the service at {self.session.url}: its microphone and speaker are its own")
            return
        try:
            from assistant.audio.devices import list_devices  # noqa: PLC0415

            devs = list_devices()
            text = "\n".join(f"{d.index}: {d.name} (in {d.max_input_channels}, out {d.max_output_channels})" for d in devs) or "no audio devices"
        except AssistantError as exc:
            text = exc.message
        src = self.session.options.input_file
        self.main_screen.query_one("#devices", Static).update(("input: " + str(src) + "\n" if src else "") + text)

    def refresh_audit(self) -> None:
        from assistant.controller.remote import read_audit_log  # noqa: PLC0415

        if self.session.remote:
            return  # the service's audit log is on its machine (RemoteCall events still show in the conversation)
        table = self._panel("#audit")
        if table is None:
            return
        table.clear()
        for e in read_audit_log(self.config.paths.resolved_data_dir() / "remote_audit.jsonl", 20):
            user = next((m.get("content", "") for m in e.get("sent", {}).get("messages", []) if m.get("role") == "user"), "")
            table.add_row(str(e.get("time", ""))[11:19], e.get("endpoint", ""), user[:60], f"{e.get('prompt_tokens', 0)}+{e.get('completion_tokens', 0)}")

    # ------------------------------------------------------------------ input and actions

    @on(Input.Submitted, "#request")
    def submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        event.input.value = ""
        if text:
            self.ask(text)

    def action_push_to_talk(self) -> None:
        if self.session.push_to_talk():
            self._show_state("listening")

    async def action_interrupt(self) -> None:
        await self.session.interrupt()

    def action_toggle_mute(self) -> None:
        self._muted = not self._muted
        self.session.set_muted(self._muted)
        self._show_state("idle")

    def action_save_screenshot(self) -> None:
        path = self.save_screenshot(path=str(Path.cwd()), filename=f"jarvis-{int(time.time())}.svg")
        self.notify(f"screenshot saved: {path}")

    async def _confirm(self, req: ConfirmationRequest) -> bool:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bool] = loop.create_future()
        risk = {"security": "Security-sensitive.", "off_device": "This sends data off the device."}.get(req.risk.value, "")
        self.push_screen(ConfirmDialog(req.prompt, risk), callback=lambda ok: answer.done() or answer.set_result(bool(ok)))
        return await answer

    # ------------------------------------------------------------------ settings

    def _save(self, overrides: dict[str, Any]) -> bool:
        status = self.main_screen.query_one("#settings-status", Static)
        if self.session.remote:
            self.notify("these are the running service's settings: change its config file and send it SIGHUP", severity="warning", timeout=8)
            return False
        try:
            new = self.config.with_overrides(overrides)
        except AssistantError as exc:
            self.notify(exc.message.splitlines()[-1], severity="error", timeout=8)
            return False
        self.config = new
        if self.config_path is not None:
            try:
                save_config(new, self.config_path)
            except AssistantError as exc:
                self.notify(exc.message, severity="error")
                return False
            status.update(f"saved to {self.config_path}")
            self.notify(f"saved to {self.config_path}")
        else:
            status.update("applied (no config file to save to)")
        return True

    @on(Button.Pressed, "#save-threshold")
    def save_threshold(self) -> None:
        raw = self.main_screen.query_one("#threshold", Input).value
        try:
            value = float(raw)
        except ValueError:
            self.notify(f"wake threshold must be a number between 0 and 1, not {raw!r}", severity="error")
            return
        if self._save({"wake.threshold": value}):
            p = self.session.pipeline
            if p is not None and p.listener is not None:
                p.listener.wake.config = self.config.wake

    @on(Select.Changed, "#policy")
    def policy_changed(self, event: Select.Changed) -> None:
        if event.value == self.config.remote.policy:
            return
        if self._save({"remote.policy": event.value}):
            ctrl = self.session.controller
            if ctrl is not None and ctrl.router.remote is not None:
                ctrl.router.remote.policy = str(event.value)

    async def on_unmount(self) -> None:
        await self.session.close()

