"""Configuration: one TOML file, validated into frozen per-component settings.

The file is read once at the edge (CLI, service, TUI) and the resulting :class:`Config` is passed
to the components; nothing reads configuration from inside a constructor. Unknown keys and bad
values are rejected with the key path and what is allowed, e.g.::

    config.toml: [wake] threshold = 1.5: must be <= 1 (a wake score is between 0 and 1)
    config.toml: [wake] unknown key 'treshold'; allowed keys: models, features, threshold, ...

Where the file lives: ``--config PATH``, else ``$ASSISTANT_CONFIG``, else ``config.toml`` in the
platform's config directory (``~/.config/jarvis-assistant`` on Linux) if present; otherwise the
defaults below, which run fully offline on the embedded simulated home.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError

__all__ = [
    "APP_NAME",
    "AsrConfig",
    "AudioConfig",
    "Config",
    "EndpointConfig",
    "FastPathConfig",
    "HomeAssistantConfig",
    "HomeConfig",
    "LlmConfig",
    "McpConfig",
    "McpServerConfig",
    "MqttConfig",
    "PathsConfig",
    "RemoteConfig",
    "RemoteEndpoint",
    "ServiceConfig",
    "ToolsConfig",
    "TtsConfig",
    "WakeConfig",
    "WakeVerifyConfig",
    "default_config_path",
    "load_config",
    "save_config",
]

APP_NAME = "jarvis-assistant"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class PathsConfig(_Section):
    """Where the assistant keeps its data."""

    data_dir: Path | None = None
    """State (home, timers, notes, audit log). Default: platform data dir, or $ASSISTANT_DATA_DIR."""
    models_dir: Path | None = None
    """The model store. Default: ``<data_dir>/models``, or $ASSISTANT_MODELS_DIR."""

    def resolved_data_dir(self) -> Path:
        """The data directory, after environment overrides."""
        if self.data_dir is not None:
            return self.data_dir.expanduser()
        env = os.environ.get("ASSISTANT_DATA_DIR")
        if env:
            return Path(env).expanduser()
        return Path(platformdirs.user_data_dir(APP_NAME))

    def resolved_models_dir(self) -> Path:
        """The model store directory, after environment overrides."""
        if self.models_dir is not None:
            return self.models_dir.expanduser()
        env = os.environ.get("ASSISTANT_MODELS_DIR")
        if env:
            return Path(env).expanduser()
        return self.resolved_data_dir() / "models"


class AudioConfig(_Section):
    """Audio devices."""

    input_device: str | int | None = None
    """Microphone by name (substring) or index; None = the system default."""
    output_device: str | int | None = None
    """Speaker by name (substring) or index; None = the system default."""
    output_sample_rate: int | None = Field(default=None, ge=8000, le=192000)
    """Rate to play or write replies at; None = the speaker's default, or the voice's rate for files."""


class WakeVerifyConfig(_Section):
    """The optional second pass: transcribe the wake window and look for the wake phrase."""

    enabled: bool = False
    phrases: list[str] = []
    """Accepted phrases; empty = derived from the wake model names ("hey_jarvis_v0.1" → "hey jarvis")."""
    min_similarity: Probability = 0.6
    """Fuzzy match ratio (difflib) between the heard words and a phrase needed to accept."""
    window_s: float = Field(default=2.0, ge=0.5, le=5.0)
    """Seconds of audio before the detection that are transcribed."""


class WakeConfig(_Section):
    """Wake word: webrtcvad gate + openWakeWord."""

    models: list[str] = ["hey_jarvis"]
    """Wake models: catalog names or paths to .onnx files. Any number run at once."""
    features: str = "openwakeword-features"
    """The openWakeWord front end (melspectrogram + embedding): catalog name or a directory."""
    threshold: Probability = 0.5
    """Score above which an 80 ms frame counts as a detection."""
    patience: int = Field(default=1, ge=1, le=25)
    """Consecutive 80 ms frames above the threshold needed to fire."""
    refractory_s: float = Field(default=2.0, ge=0.0, le=30.0)
    """No second detection from the same model within this many seconds."""
    vad_gate: bool = True
    """Run the wake model only while the VAD hears voice (low power). Off = run it on every frame."""
    gate_aggressiveness: int = Field(default=1, ge=0, le=3)
    """webrtcvad mode for the gate, 0 (lenient) .. 3 (strict)."""
    gate_hangover_ms: int = Field(default=1000, ge=0, le=5000)
    """Keep the wake model running this long after the last voiced frame."""
    gate_preroll_ms: int = Field(default=1000, ge=0, le=2000)
    """Audio from before the voice onset fed to the wake model when the gate opens."""
    barge_in: bool = True
    """The wake word spoken while the assistant talks stops it and listens."""
    barge_in_threshold: Probability = 0.7
    """Score a wake word needs while the assistant is speaking (it competes with its own voice)."""
    stop_phrases: bool = True
    """While the assistant speaks, "stop", "cancel", "never mind", "be quiet" … stop it without the
    wake word (short utterances only, the reply's own words ignored; :mod:`assistant.engine.stopword`)."""
    verify: WakeVerifyConfig = WakeVerifyConfig()


class EndpointConfig(_Section):
    """Endpointing: when does the utterance after the wake word end."""

    vad: Literal["silero", "webrtc"] = "silero"
    """The voice detector that finds the utterance's start, pauses and end (the wake word's
    always-on gate is webrtcvad either way, for its cost): Silero VAD v6 (the model faster-whisper
    ships) or webrtcvad. Measured (``benchmarks`` section ``vad``, 16 spoken requests): under pink
    room noise at 10 dB SNR webrtcvad (aggressiveness 2 or 3) calls 88 % of the noise voice and
    never sees the end of 13 of the 16 requests, under music at 10 dB 76 % and all 16; Silero 0 %
    and none, for 2.3 ms of CPU per audio second instead of 0.13 ms; at 20 dB it sees an end ~20 ms
    later (its 32 ms windows). A TV talking underneath defeats both (it is voice)."""
    vad_threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    """Silero's speech probability at or above which a window is voice."""
    vad_aggressiveness: int = Field(default=2, ge=0, le=3)
    """webrtcvad's aggressiveness (0 most lenient … 3 strictest)."""
    trailing_silence_ms: int = Field(default=700, ge=100, le=5000)
    """Without a turn detector: end of utterance after this much silence (Home Assistant's
    default sensitivity is 0.7 s)."""
    turn_detection: Literal["smart_turn", "silence"] = "smart_turn"
    """``smart_turn``: at every short pause (``pause_ms``) ask whether the user has finished —
    Smart Turn's reading of the audio plus the words transcribed so far — and answer at once if so
    (:mod:`assistant.speech.turn`); ``silence``: wait ``trailing_silence_ms`` of silence. Without
    the model, ``smart_turn`` falls back to ``silence`` with a warning."""
    turn_model: str = "smart-turn-v3.2"
    """Catalog name or path of the Smart Turn ONNX model."""
    turn_text_model: str = "smollm2-135m-instruct"
    """A small ChatML GGUF model (catalog name or path) that scores whether the words so far end
    a sentence — Whisper makes fragments sound whole ("turn on the" → "Turn on that.") — or ""
    for none. Loaded on its own (128-token context, ~100 MB for SmolLM2-135M)."""
    min_completeness: float = Field(default=0.03, ge=0.0, lt=1.0)
    """Below this text completeness (the probability that the sentence ends here) the turn goes on."""
    end_completeness: float = Field(default=0.1, ge=0.0, le=1.0)
    """At or above this text completeness a pause ends the turn even when nothing below the LLM
    understands the words, unless Smart Turn is nearly sure the speaker goes on (below
    ``turn_threshold`` / 5): a whole question for the LLM ("who painted the Mona Lisa") need not
    wait for the ceiling (0 = off). Scored on the written sentences: the development set's first
    halves of two-part requests ("what is the capital", "turn the bedroom fan") at most 0.024; 11 of
    the turn benchmark's 20 questions 0.1 or more. In the turn benchmark it cut ceiling waits from
    15 to 12 of 62 turns with the held-out cut-offs unchanged (11 of 60)."""
    unfinished_alternative_margin: float = Field(default=0.75, ge=0.0)
    """A pause's transcript is taken as unfinished when one of Whisper's other beam hypotheses
    within this gap (log-probability per token) ends where a request cannot: Whisper "completes" a
    fragment ("Turn on that." for "turn on the", with "Turn on the..." 0.69 behind it; "Remind me
    too.", "Remind me to..." 0.11). The development two-part requests' 20 first halves, each spoken
    by two voices under room noise: 11 of 40 have such a hypothesis (gaps 0.03-0.69); of the 40
    whole requests and the turn benchmark's 62 requests (124 recognitions), none. With it and
    ``STAND_INS`` the development cut-offs fell from 19 to 6 of 60. A wrong flag only waits for
    the ceiling (0 = off)."""
    words_decide: bool = True
    """When the transcript at a pause settles the question alone (no words yet, words ending where a
    request cannot, words a tier below the LLM understands), give the verdict without Smart Turn and
    the text model (:meth:`assistant.speech.turn.TurnDetector.by_words`): a fast-path command's turn
    ends when its transcript is ready instead of after a Smart Turn call. False: always ask both."""
    pause_ms: int = Field(default=200, ge=60, le=2000)
    """Silence after which the turn detector is asked (people answer each other ~200 ms after a turn)."""
    template_pause_ms: int = Field(default=100, ge=0, le=2000)
    """Silence after which words the exact templates match (a whole command by the grammar) end the
    turn, as soon as the speculative transcript (``asr.speculative_after_ms``) is ready, without
    waiting for ``pause_ms`` (0 or ≥ ``pause_ms``: off). The same rule as at the pause (rule 6 of
    docs/turn-taking.md, with ``words_decide``), only sooner: a pause of 100–200 ms inside a request
    whose first part is itself a whole command ("Turn on the light … in the kitchen") is judged too."""
    turn_threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    """Smart Turn probability at or above which a pause ends the turn (pipecat's default 0.5)."""
    turn_ceiling_ms: int = Field(default=1200, ge=200, le=5000)
    """With a turn detector: silence that ends the turn whatever the detector said (a speaker the
    detector judged unfinished who has in fact finished waits this long)."""
    unsure_ceiling_ms: int = Field(default=700, ge=0, le=5000)
    """With a turn detector: silence that ends the turn when no word at the pause says the speaker
    goes on, but nothing said they finished either (:data:`assistant.speech.turn.UNSURE_REASONS`:
    Smart Turn below ``turn_threshold`` with words that decide nothing, or the text model's low
    completeness score, which calls whole questions unfinished). Words that stop mid-sentence
    ("turn on the", a bare target, a verb without its particle) still wait up to
    ``turn_ceiling_ms``. 700 is the fixed trailing silence a sequential pipeline waits
    (``trailing_silence_ms``), so such a turn is never slower than one, and it is longer than the
    300–600 ms mid-sentence gaps of the cut-off recordings; in the turn benchmark 7 of 20 questions
    for the LLM had waited for the 1.2 s ceiling, most on the text model's score (0 or ≥
    ``turn_ceiling_ms``: off)."""
    max_utterance_s: float = Field(default=15.0, ge=1.0, le=120.0)
    no_speech_timeout_s: float = Field(default=5.0, ge=0.5, le=60.0)
    """Give up if nobody speaks this long after the wake word."""
    pre_roll_ms: int = Field(default=300, ge=0, le=2000)
    """Audio kept from before speech onset so the first syllable is never cut."""
    min_speech_ms: int = Field(default=60, ge=20, le=1000)
    """Voiced audio needed to count as the start of speech."""
    follow_up_s: float = Field(default=4.0, ge=0.0, le=30.0)
    """How long the assistant listens for a follow-up without the wake word, when it does."""
    follow_up: Literal["invited", "always", "never"] = "invited"
    """When to listen for a follow-up without the wake word: only after a reply that asks
    something ("Which one…?") — otherwise a TV or a second person after every command would
    trigger it —, after every reply, or never."""


class AsrConfig(_Section):
    """Speech recognition with faster-whisper."""

    model: str = "auto"
    """Catalog name, a directory holding a CTranslate2 Whisper model, or "auto" (this machine's
    tier default, or an installed ASR model)."""
    threads: int = Field(default=0, ge=0, le=64)
    """CPU threads; 0 = all cores."""
    compute_type: Literal["int8", "int8_float32", "float32"] = "int8"
    beam_size: int = Field(default=5, ge=1, le=10)
    """Beam search width (5: Whisper's default; measured on spoken home requests with room noise,
    word error rate 6.8 % vs 7.6 % greedy with Piper's voice, 25.6 % vs 31.1 % with espeak-ng,
    at no measurable extra time with tiny.en on 2 cores)."""
    window_s: float = Field(default=10.0, ge=0, le=30)
    """Seconds of audio the Whisper encoder reads for an utterance that fits (30 or 0: always
    Whisper's full window). Whisper pads everything to 30 s; a 10 s window is ~3× faster on a
    short command (tiny.en on 2 cores: 201 vs 628 ms p50) at about the same word error rate
    (17.2 % vs 17.4 % on spoken development requests under room noise) but more slips in names,
    so a transcript nothing below the LLM understands that may be a home or tool request is
    recognised again with the full window (:mod:`assistant.engine.recognizer`)."""
    n_best_margin: float = Field(default=0.5, ge=0, le=10)
    """When nothing below the LLM understands an utterance even after it was heard again (full
    window, then biased), the first of the short-window beam search's other hypotheses that is
    understood is taken, if its log-probability per token is at most this far below the top
    hypothesis's (0 = never): Whisper's candidates rescored against the home's grammar, at no
    extra recognition (:mod:`assistant.engine.recognizer`). Measured on 120 spoken development
    requests × 2 voices (deterministic Piper and espeak-ng, pink room noise 20 dB, the voice loop):
    202 right / 3 false actions without it, 211 / 2 at 0.5, 205 / 3 at 1.0. Taken *before* hearing
    again instead, it was 203 / 6: a close hypothesis can be a wrong command ("It's the kettle on."
    for "Is the kettle on?"), which the full window usually gets right. On the held-aside split,
    never tuned on (115 requests × the same 2 voices): 161 → 170 of 230, false actions 7 → 8."""
    grammar_margin: float = Field(default=0.9, ge=0, le=10)
    """When nothing below the LLM understands an utterance even after hearing it again and its
    beam hypotheses, it is recognised once more with Whisper allowed to write only the words of the
    home's grammar (the templates', the tolerant tier's, the home's names), and of the hypotheses
    that are understood and only repair what was heard, the one Whisper, unconstrained, scores best
    is taken if it is at most this far (log-probability per token) below its own transcript (0 = never;
    :meth:`assistant.engine.recognizer.Recognizer.within_grammar`). Chosen on the development set
    spoken (Piper joe and espeak-ng en-gb, pink room noise at 20 dB SNR, the voice loop; 716 turns)
    with every candidate logged: 19 utterances got an understood candidate; up to 0.9, 15 were
    right and none wrong ("Lock all the doors." 0.95 is lost); "Turn off and rotate." for "turn off
    the telly" was 0.99 below, "Nursery light on at 1%" for "… at 10%" 1.6 (and lost the number)."""
    language: str = "en"
    initial_prompt: str = ""
    """Text that biases recognition (style, vocabulary)."""
    bias_to_tools: bool = True
    """When no tier understands the first transcript, recognise again biased towards the few
    device and area names it sounds like, and keep that transcript if it is understood (the first
    pass is never biased: biasing with every name makes Whisper hear names nobody said)."""
    partial_interval_ms: int = Field(default=0, ge=0, le=5000)
    """Re-transcribe the growing utterance this often for partial transcripts (0 = off)."""
    speculative_after_ms: int = Field(default=20, ge=0, le=5000)
    """Start recognising at the first pause this long, while endpointing still waits for the
    end; if the user does not go on, the transcript is ready when the utterance ends, and the turn
    detector reads it at ``endpoint.template_pause_ms`` or ``endpoint.pause_ms`` (0 = off).
    Measured on 2 x86 cores, the 22 fast-path requests of the ``turn`` benchmark (last voiced frame
    → first reply sample heard, real-time input, pink noise at 20 dB SNR, Silero endpointer,
    ``template_pause_ms`` 100; p50 of each run): 454 and 374 ms at 60, 369 ms at 40, 329, 338 and
    383 ms at 20. The cost is recognition while the user still speaks: a speculation made stale by
    more speech is dropped; on 48 s of the fixtures' real speech, mid-utterance gaps of 20-200 ms
    come 21 times a minute, of 60-200 ms 15 times (an earlier 10-request run, white noise and
    webrtcvad: 646 ms at 200, 601 at 100, 528 at 60)."""


class TtsConfig(_Section):
    """Speech synthesis with piper."""

    voice: str = "auto"
    """Catalog name, path to a piper .onnx voice (its .onnx.json beside it), or "auto"."""
    threads: int = Field(default=0, ge=0, le=64)
    length_scale: float | None = Field(default=None, gt=0.2, lt=5.0)
    """Speaking rate: < 1 faster, > 1 slower; None = the voice's own."""
    noise_scale: float | None = Field(default=None, ge=0.0, le=2.0)
    """Piper's sampling noise on the voice's sound (VITS ``noise_scale``); None = the voice's own
    (0.667 for most voices). 0 with ``noise_w_scale`` 0: the same text gives the same audio every
    time (flatter, but reproducible: the test suite's setting)."""
    noise_w_scale: float | None = Field(default=None, ge=0.0, le=2.0)
    """Piper's sampling noise on phoneme durations (VITS ``noise_w``); None = the voice's own (0.8)."""
    volume: float = Field(default=1.0, gt=0.0, le=4.0)
    stream: bool = True
    """Decode each sentence in pieces and hand out its first ~0.28 s as soon as it is made, while
    the rest is decoded (:mod:`assistant.speech.piper_stream`; needs the ``onnx`` package and a
    single-speaker voice, else whole sentences). Each sentence is then scaled by one gain per voice
    instead of piper's per-sentence peak normalisation. False: piper's whole sentences."""
    sentence_pause_ms: int = Field(default=150, ge=0, le=2000)
    """Silence between sentences of a reply."""
    first_clause_words: int = Field(default=3, ge=0, le=50)
    """A streamed reply (the LLM's) starts speaking at its first comma, semicolon or colon that
    follows at least this many words, when no sentence has ended yet (:class:`~assistant.speech.tts.SentenceSplitter`);
    0: whole sentences only."""
    cache_s: float = Field(default=120.0, ge=0.0, le=3600.0)
    """Seconds of synthesised audio kept for replies said again ("Turned on the kitchen light."),
    least recently used dropped first (120 s of a 22.05 kHz voice: 5.3 MB). A reply in the cache
    plays without synthesis; 0: off."""
    prefetch: bool = True
    """Synthesise the first sentence of a reply the local LLM prepared at a pause (preemptive
    generation) into that cache before the turn ends, so that it plays without synthesis when the
    turn does end with those words (speculative synthesis; needs ``cache_s`` > 0)."""
    earcon: bool = True
    """Play a short tone the instant an utterance ends, before the reply is ready."""
    earcon_after_ms: int = Field(default=250, ge=0, le=5000)
    """With a live microphone, play the earcon only if no reply audio has started this long after
    the end of the turn (0: always, at once). A reply that quick is itself the acknowledgement; the
    earcon (120 ms) would only delay it."""


class LlmConfig(_Section):
    """The local LLM controller (llama-cpp-python, any GGUF chat model)."""

    enabled: bool = True
    model: str = "auto"
    """Catalog name, path to a .gguf file, or "auto"."""
    threads: int = Field(default=0, ge=0, le=64)
    """Threads for token generation; 0 = half the cores, at least one (the voice loop's other
    models share them: :func:`assistant.controller.llm_engine.decode_threads`). Prompt evaluation
    uses every core."""
    context: int = Field(default=4096, ge=512, le=131072)
    temperature: float = Field(default=0.2, ge=0.0, le=2.0)
    top_p: float = Field(default=0.9, gt=0.0, le=1.0)
    top_k: int = Field(default=40, ge=0, le=1000)
    max_tokens: int = Field(default=200, ge=16, le=4096)
    max_steps: int = Field(default=4, ge=1, le=16)
    """Tool calls the plan–act–observe loop may make in one turn."""
    time_limit_s: float = Field(default=30.0, ge=1.0, le=600.0)
    max_tools_in_prompt: int = Field(default=8, ge=1, le=64)
    """Only this many tools, the most relevant to the request, go into the prompt."""
    history_turns: int = Field(default=6, ge=0, le=50)
    """Turns of conversation kept verbatim; older ones are summarised."""
    seed: int = 0
    preemptive_generation: bool = True
    """Start generating at a pause after which the turn will probably end (the endpointer waits
    ``endpoint.unsure_ceiling_ms`` to see whether the user goes on): the wait becomes generation
    time, and speech stops it. Costs CPU on pauses where the user does go on."""


class RemoteEndpoint(_Section):
    """One OpenAI-compatible chat-completions endpoint."""

    name: str
    base_url: str
    """E.g. ``http://192.168.1.20:8080/v1``."""
    model: str
    api_key_env: str = ""
    """Environment variable holding the API key ("" = none)."""
    timeout_s: float = Field(default=20.0, gt=0.0, le=600.0)
    privacy: Literal["lan", "cloud"] = "cloud"
    """``lan``: a machine of the user's; ``cloud``: a third party. Cloud endpoints get redacted data."""
    retries: int = Field(default=2, ge=0, le=10)


class RemoteConfig(_Section):
    """The remote fallback tiers."""

    policy: Literal["never", "ask", "allowed"] = "never"
    """never: nothing leaves the device; ask: confirm each call; allowed: use when needed."""
    endpoints: list[RemoteEndpoint] = []
    redact: Literal["cloud", "always", "never"] = "cloud"
    """Replace personal data with placeholders: for cloud endpoints, for all, or never."""
    breaker_failures: int = Field(default=3, ge=1, le=100)
    """Consecutive failures that open an endpoint's circuit breaker."""
    breaker_cooldown_s: float = Field(default=60.0, ge=1.0, le=86400.0)
    private_terms: list[str] = []
    """Names (people, your street, your town) always replaced by placeholders before sending."""
    max_tools: int = Field(default=6, ge=0, le=64)
    """Tool schemas sent with a remote request (the most relevant ones only)."""
    max_tokens: int = Field(default=300, ge=16, le=8192)


class ToolsConfig(_Section):
    """Tool plugins."""

    allow: list[str] = []
    """Plugins or tools to load (empty = all installed)."""
    block: list[str] = []
    """Plugins or tools never to load."""
    timeout_s: float = Field(default=10.0, gt=0.0, le=600.0)
    confirm_risks: list[Literal["read_only", "home", "security", "off_device"]] = [
        "security",
        "off_device",
    ]
    """Risk classes that ask for confirmation before running."""
    confirm_tools: list[str] = []
    """Tools that always ask, whatever their risk class."""
    never_confirm_tools: list[str] = []
    """Tools that never ask, whatever their risk class."""
    confirm_dictation_below: float | None = Field(default=-0.32, le=0.0)
    """A spoken request whose transcript Whisper scores below this mean log-probability per token
    (natural log) asks before a tool writes down the user's words as said (a list item, a note:
    the tool's ``dictated`` parameters), "Add “more the long” to the chores list?". Chosen on the
    development set's spoken list requests (23 items added, 8 of them misheard; docs/understanding.md):
    -0.32 asks about 6 of the 8 and about 3 of the 15 heard right. None: never ask."""


class HomeAssistantConfig(_Section):
    url: str = "http://homeassistant.local:8123"
    token_env: str = "HASS_TOKEN"
    """Environment variable holding a long-lived access token."""
    timeout_s: float = Field(default=10.0, gt=0.0, le=120.0)


class MqttConfig(_Section):
    host: str = "localhost"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str = ""
    password_env: str = ""
    devices: Path | None = None
    """YAML file describing the MQTT devices (see docs/home.md)."""
    timeout_s: float = Field(default=5.0, gt=0.0, le=120.0)


class HomeConfig(_Section):
    """Home control."""

    backend: Literal["simulated", "home_assistant", "mqtt"] = "simulated"
    area: str = ""
    """The area this assistant is in: "turn on the lights" with no place means the lights here."""
    simulated_home: Path | None = None
    """YAML home for the simulated backend; None = the bundled demo home."""
    home_assistant: HomeAssistantConfig = HomeAssistantConfig()
    mqtt: MqttConfig = MqttConfig()


class FastPathConfig(_Section):
    """Template fast path (hassil + home-assistant-intents)."""

    enabled: bool = True
    language: str = "en"
    tolerant: bool = True
    """After the exact templates, understand requests phrased other ways (other words, other
    order, filler, indirect requests, misheard names) without an LLM."""


class SearchConfig(_Section):
    documents_dir: Path | None = None
    """Folder of notes and documents indexed for local search; None = ``<data_dir>/documents``."""
    searxng_url: str = ""
    """Base URL of a self-hosted SearXNG instance for web search ("" = web search off)."""
    timeout_s: float = Field(default=10.0, gt=0.0, le=120.0)


class ServiceConfig(_Section):
    """The headless service's control API and Wyoming server."""

    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    token_env: str = "ASSISTANT_API_TOKEN"
    """Environment variable with the API token; when unset, a token is generated at first start
    into ``<data dir>/api-token`` (readable only by the user). Every request but /health needs it."""
    allowed_hosts: list[str] = []
    """Host names the API answers to besides loopback and ``host`` (e.g. "jarvis.local")."""
    allowed_origins: list[str] = []
    """Web origins allowed to call the API from a browser (none by default)."""
    wyoming_port: int = Field(default=10700, ge=0, le=65535)
    wyoming_enabled: bool = False
    wyoming_host: str = "127.0.0.1"
    """Where the Wyoming server listens. Wyoming has no authentication or encryption: anything that
    can connect can use the assistant and its tools. Keep it on loopback unless satellites need it."""
    wyoming_allow: list[str] = []
    """Addresses or networks (e.g. "192.168.1.40", "192.168.1.0/24") allowed to connect to Wyoming
    besides loopback; others are disconnected at once."""
    wyoming_max_audio_s: float = Field(default=30.0, ge=1.0, le=600.0)
    """Longest audio a Wyoming client may stream for one transcription or wake detection (a
    satellite's pipeline run streams as long as it likes; the assistant keeps at most 10 s of it)."""
    satellite_areas: dict[str, str] = {}
    """The room of each Wyoming satellite, by address (e.g. {"192.168.1.41" = "kitchen"}): "turn
    on the light" said to that satellite means the light there."""


class McpServerConfig(_Section):
    """One Model Context Protocol server whose tools become the assistant's tools.

    Exactly one of ``command`` (a local server started over stdio) or ``url`` (a running server
    reached over Streamable HTTP, or SSE with ``transport = "sse"``).
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,23}$")
    """Short lower-case name; the server's tools are registered as ``<name>__<tool>``."""
    command: list[str] = []
    """Program and arguments, e.g. ``["uvx", "mcp-server-fetch"]``."""
    env: dict[str, str] = {}
    """Extra environment variables for a stdio server."""
    cwd: Path | None = None
    url: str = ""
    """E.g. ``http://homeassistant.local:8123/mcp_server/sse`` or ``http://127.0.0.1:8000/mcp``."""
    transport: Literal["auto", "stdio", "http", "sse"] = "auto"
    """auto: stdio when ``command`` is set, Streamable HTTP when ``url`` is."""
    headers: dict[str, str] = {}
    token_env: str = ""
    """Environment variable holding a bearer token sent as ``Authorization: Bearer …`` ("" = none)."""
    allow: list[str] = []
    """The server's tools to register, by the server's own names (empty = all)."""
    block: list[str] = []
    risk: dict[str, Literal["read_only", "home", "security", "off_device"]] = {}
    """Per-tool risk overriding the server's annotations, e.g. ``{get_forecast = "read_only"}``."""
    templates: dict[str, list[str]] = {}
    """Per-tool sentence templates for the fast path (hassil syntax, ``{arg}`` = an argument),
    e.g. ``{get_forecast = ["what's the weather in {city}"]}``."""
    timeout_s: float = Field(default=15.0, gt=0.0, le=600.0)
    """Longest wait for one tool call; a hanging server yields a tool error after this."""
    connect_timeout_s: float = Field(default=10.0, gt=0.0, le=120.0)
    """Longest wait at session start for the server to connect and list its tools."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v

    def kind(self) -> Literal["stdio", "http", "sse"]:
        """The transport to use.

        Raises:
            ValueError: Neither or both of ``command`` and ``url`` are set, or the transport
                does not fit.
        """
        if bool(self.command) == bool(self.url):
            raise ValueError(f"MCP server '{self.name}' needs exactly one of command (stdio) or url (HTTP)")
        if self.transport == "auto":
            return "stdio" if self.command else "http"
        if (self.transport == "stdio") != bool(self.command):
            raise ValueError(f"MCP server '{self.name}': transport {self.transport!r} does not fit {'command' if self.command else 'url'}")
        return self.transport


class McpConfig(_Section):
    """The Model Context Protocol: servers whose tools the assistant uses, and the assistant's own
    MCP server (``assistant mcp`` over stdio, ``assistant serve --mcp`` over Streamable HTTP)."""

    servers: list[McpServerConfig] = []
    serve_port: int = Field(default=8766, ge=0, le=65535)
    """Port of ``assistant serve --mcp`` (on ``service.host``; the control API's token is required)."""
    expose_tools: list[str] = []
    """The assistant's tools offered to MCP clients (empty = all but those from MCP servers);
    ``ask`` (a request through the whole router) is always offered."""

    @field_validator("servers")
    @classmethod
    def _unique(cls, v: list[McpServerConfig]) -> list[McpServerConfig]:
        names = [s.name for s in v]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"server names must be unique; repeated: {', '.join(sorted(dup))}")
        for s in v:
            try:
                s.kind()
            except ValueError as exc:
                raise ValueError(str(exc)) from None
        return v


class Config(_Section):
    """The whole configuration."""

    paths: PathsConfig = PathsConfig()
    audio: AudioConfig = AudioConfig()
    wake: WakeConfig = WakeConfig()
    endpoint: EndpointConfig = EndpointConfig()
    asr: AsrConfig = AsrConfig()
    tts: TtsConfig = TtsConfig()
    llm: LlmConfig = LlmConfig()
    remote: RemoteConfig = RemoteConfig()
    tools: ToolsConfig = ToolsConfig()
    home: HomeConfig = HomeConfig()
    fastpath: FastPathConfig = FastPathConfig()
    search: SearchConfig = SearchConfig()
    service: ServiceConfig = ServiceConfig()
    mcp: McpConfig = McpConfig()
    plugins: dict[str, dict[str, Any]] = {}
    """Settings of third-party tool plugins, one table per plugin (``[plugins.weather]``); each
    plugin validates its own table."""

    @field_validator("wake")
    @classmethod
    def _wake_has_models(cls, v: WakeConfig) -> WakeConfig:
        if not v.models:
            raise ValueError("needs at least one wake model")
        return v

    def with_overrides(self, overrides: dict[str, Any]) -> "Config":
        """A copy with dotted-key overrides applied and validated, e.g. ``{"wake.threshold": 0.6}``.

        Raises:
            ConfigError: A key is unknown or a value is invalid.
        """
        data = self.model_dump(mode="python", exclude_unset=False)
        for dotted, value in overrides.items():
            node = data
            parts = dotted.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
        return _validate(data, "override")


def default_config_path() -> Path:
    """Where the config file is looked for when none is given."""
    env = os.environ.get("ASSISTANT_CONFIG")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: Any = Config
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        ann = field.annotation
        # unwrap list[Model]
        args = getattr(ann, "__args__", ())
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        elif args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
            model = args[0]
        else:
            return []
    return list(getattr(model, "model_fields", {}))


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        keys = [str(p) for p in loc if not isinstance(p, int)]
        section = "[" + ".".join(keys[:-1]) + "] " if len(keys) > 1 else ""
        key = keys[-1] if keys else "(file)"
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(_allowed_keys(loc))
            lines.append(f"{source}: {section}unknown key '{key}'; allowed keys: {allowed}")
        else:
            msg = err["msg"]
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, ") :]
            lines.append(f"{source}: {section}{key} = {err.get('input')!r}: {msg}")
    return "\n".join(lines)


def _validate(data: dict[str, Any], source: str) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            "invalid configuration:\n" + _format_errors(exc, source),
            hint="fix the key(s) above; `assistant config show` prints every key with its default",
        ) from None


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate the config file.

    Args:
        path: The TOML file. None = :func:`default_config_path` if it exists, else defaults.

    Returns:
        The validated, frozen configuration.

    Raises:
        ConfigError: The file is missing (when named explicitly), is not valid TOML, has unknown
            keys or bad values. The message names the key path and what is allowed.
    """
    explicit = path is not None
    p = Path(path).expanduser() if path is not None else default_config_path()
    if not p.exists():
        if explicit or os.environ.get("ASSISTANT_CONFIG"):
            raise ConfigError(
                f"config file {p} does not exist",
                hint="create it (`assistant config init` writes a commented default) or drop --config",
            )
        return Config()
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p} is not valid TOML: {exc}", hint="fix the syntax at that line") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {p}: {exc}") from None
    return _validate(data, str(p))


def _strip_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_none(v) for v in value]
    return value


def save_config(config: Config, path: str | Path) -> Path:
    """Write the config as TOML (only keys that differ from the defaults), atomically.

    Raises:
        ConfigError: The file cannot be written (e.g. the disk is full); the old file is kept.
    """
    import tomli_w

    p = Path(path).expanduser()
    data = _strip_none(config.model_dump(mode="json", exclude_defaults=True))
    tmp = p.with_suffix(p.suffix + ".tmp")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(tomli_w.dumps(data), encoding="utf-8")
        os.replace(tmp, p)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write config file {p}: {exc}", hint="free some disk space or check permissions") from None
    return p
