"""``assistant listen``, ``assistant say`` and ``assistant devices``."""

from __future__ import annotations

import argparse
import json
import sys
import time

from ..app import load_speech
from ..audio.devices import MicrophoneSource, SpeakerSink, list_devices
from ..audio.io import FileSource, WavSink
from ..bus import EventBus
from ..config import Config
from ..events import (
    ErrorEvent,
    Event,
    FinalTranscript,
    NoSpeech,
    StageTiming,
    TurnFinished,
    WakeDetected,
    WakeRejected,
    to_dict,
)
from ..pipeline import Pipeline
from . import config_of, warn

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("listen", help="print the wake words and transcripts heard in a recording or on the microphone")
    p.add_argument("--input", "-i", metavar="FILE", help="WAV/FLAC/MP3 recording (default: the microphone)")
    p.add_argument("--json", action="store_true", help="one JSON object per event")
    p.add_argument("--wake-model", action="append", metavar="NAME", help="wake model (repeatable; default from config)")
    p.add_argument("--threshold", type=float, help="wake score threshold 0..1")
    p.add_argument("--verify", action="store_true", help="verify each wake word with a Whisper second pass")
    p.add_argument("--input-device", metavar="NAME|INDEX", help="microphone to use")
    p.add_argument("--realtime", action="store_true", help="pace the file at speech speed, as a microphone would")
    p.set_defaults(func=listen)

    p = sub.add_parser("say", help="speak text to a WAV file or the speaker")
    p.add_argument("text", help="what to say")
    p.add_argument("--output", "-o", metavar="FILE", help="WAV file to write (default: the speaker)")
    p.add_argument("--voice", metavar="NAME|PATH", help="piper voice (default from config)")
    p.add_argument("--output-device", metavar="NAME|INDEX", help="speaker to use")
    p.set_defaults(func=say)

    p = sub.add_parser("devices", help="list audio devices")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=devices)


class HumanPrinter:
    """Prints a recording's events as readable lines."""

    def __init__(self, out=sys.stdout) -> None:
        self.out = out
        self.timings: dict[int | None, list[str]] = {}

    def __call__(self, e: Event) -> None:
        p = lambda s: print(s, file=self.out, flush=True)  # noqa: E731
        if isinstance(e, WakeDetected):
            extra = f", verified: heard {e.verify_text!r}" if e.verified else ""
            p(f"[{e.audio_time_s:7.2f}s] wake word  {e.model} (score {e.score:.3f}{extra})")
        elif isinstance(e, WakeRejected):
            p(f"[{e.audio_time_s:7.2f}s] wake word  {e.model} rejected by the second pass (heard {e.verify_text!r})")
        elif isinstance(e, FinalTranscript):
            p(f"           heard      {e.text!r}" if e.text else "           heard      (no words)")
        elif isinstance(e, NoSpeech):
            p(f"[{e.audio_time_s:7.2f}s] no speech after the wake word")
        elif isinstance(e, ErrorEvent):
            p(f"           error      {e.stage}: {e.message}")
        elif isinstance(e, StageTiming):
            self.timings.setdefault(e.turn, []).append(f"{e.stage} {e.ms:.0f}")
        elif isinstance(e, TurnFinished):
            t = self.timings.pop(e.turn, [])
            if t:
                p("           timings ms " + " · ".join(t))


async def listen(args: argparse.Namespace, config: Config) -> int:
    config = config_of(args, config)
    source = FileSource(args.input, realtime=args.realtime) if args.input else None
    speech = await load_speech(config, tts=False, notice=warn)
    if source is None:
        source = MicrophoneSource(config.audio.input_device)
        warn(f"listening on '{source.device.name}' (Ctrl-C to stop)")
    bus = EventBus()
    if args.json:
        bus.subscribe(lambda e: print(json.dumps(to_dict(e)), flush=True))
    else:
        bus.subscribe(HumanPrinter())
    pipeline = Pipeline(config, speech.listener, asr=speech.asr, bus=bus, verifier=speech.verifier)
    await pipeline.run(source)
    if not args.json and args.input:
        stats = speech.listener.wake.stats if speech.listener and speech.listener.wake else None
        if stats:
            warn(
                f"wake stage: {stats.frames * 0.02:.1f} s of audio, wake models ran on "
                f"{stats.chunks_scored * 0.08:.1f} s ({stats.gate_openings} gate openings)"
            )
    return 0


async def say(args: argparse.Namespace, config: Config) -> int:
    config = config_of(args, config)
    if not args.text.strip():
        from ..errors import AssistantError  # noqa: PLC0415

        raise AssistantError("nothing to say: the text is empty", hint='give the words to speak, e.g. assistant say "hello"')
    speech = await load_speech(config, wake=False, asr=False, notice=warn)
    assert speech.tts is not None
    sink = WavSink(args.output, config.audio.output_sample_rate) if args.output else SpeakerSink(
        config.audio.output_device, config.audio.output_sample_rate
    )
    bus = EventBus()
    timings: dict[str, float] = {}
    bus.subscribe(lambda e: timings.__setitem__(e.stage, e.ms) if isinstance(e, StageTiming) and e.stage not in timings else None)
    pipeline = Pipeline(config, None, tts=speech.tts, sink=sink, bus=bus)
    t0 = time.perf_counter()
    await pipeline.say(args.text)
    await sink.close()
    total = time.perf_counter() - t0
    if isinstance(sink, WavSink):
        seconds = sink.samples_written / (sink.sample_rate or 1)
        warn(
            f"wrote {seconds:.2f} s of speech to {args.output} ({sink.sample_rate} Hz); "
            f"first audio after {timings.get('tts_first_audio', 0):.0f} ms, real-time factor {total / seconds if seconds else 0:.3f}"
        )
    return 0


def devices(args: argparse.Namespace, config: Config) -> int:
    devs = list_devices()
    if args.json:
        print(json.dumps([d.__dict__ for d in devs], indent=2))
        return 0
    if not devs:
        warn("no audio devices found (is a sound card connected? is PulseAudio/PipeWire running?)")
        return 3
    for d in devs:
        marks = ("*in " if d.is_default_input else "") + ("*out" if d.is_default_output else "")
        print(
            f"{d.index:3d}  {d.name:40.40s}  in {d.max_input_channels:2d}  out {d.max_output_channels:2d}  "
            f"{d.default_samplerate:>7.0f} Hz  {d.hostapi}  {marks}"
        )
    return 0
