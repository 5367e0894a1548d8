"""A GGUF chat model through llama-cpp-python, with prefix caching and grammar-constrained output.

The prompt is rendered with the chat template stored in the GGUF file's metadata
(``tokenizer.chat_template``), so any instruct model from the store works without per-model code.

**Prefix caching.** llama.cpp keeps the KV cache of the last evaluated tokens, and
llama-cpp-python reuses the longest common token prefix of the next prompt. The controller keeps
the system prompt, the tool catalog and the few-shot examples first and unchanged, and
:meth:`LlmEngine.warm` evaluates them once at load, so a turn only pays for the new words
(measured on this machine with SmolLM2-135M: time to first token 2.0 s cold vs 30 ms warm for an
845-token prefix; see ``benchmarks``).

The model is not thread-safe: every call runs on the engine's single worker thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from ..config import LlmConfig
from ..errors import ModelError, require

__all__ = ["CompletionStats", "JsonStringWriter", "JumpPlan", "LlmEngine", "decode_threads", "jump_plan", "load_llm"]


LOAD_LOCK = threading.Lock()
"""Held while a llama.cpp model loads: with ``verbose=False`` llama-cpp-python silences the
process's stdout/stderr by swapping file descriptors, and two loads in parallel threads would
leave them pointing at /dev/null for good."""
log = logging.getLogger(__name__)

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@dataclass
class CompletionStats:
    """What one generation cost."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    """Prompt tokens that were already in the KV cache (not evaluated again)."""
    completion_tokens: int = 0
    first_token_ms: float = 0.0
    total_ms: float = 0.0
    preemptive_ms: float = 0.0
    """How long before the request was final its generation started (:meth:`LlmEngine.speculate`; 0:
    it started when asked). ``first_token_ms`` and ``total_ms`` run from the start of generation."""

    @property
    def tokens_per_s(self) -> float:
        gen_ms = self.total_ms - self.first_token_ms
        return (self.completion_tokens - 1) / (gen_ms / 1000) if gen_ms > 0 and self.completion_tokens > 1 else 0.0


@dataclass
class _Generation:
    """One generation on the worker thread, as its consumer sees it."""

    key: tuple[str, str, int]
    """(prompt, schema as sorted JSON, max_tokens)."""
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    """Text pieces, then the :class:`CompletionStats` or the exception."""
    stop: threading.Event = field(default_factory=threading.Event)
    future: "asyncio.Future | None" = None
    started: float = field(default_factory=time.perf_counter)
    speculative: bool = False
    finished_early: bool = False
    """Stopped by its ``stop_when``: what it made is whole for its caller (not a cancelled one)."""


ACTION_OPENING = '{"tool": "'
"""What every tool call starts with, written into the prompt rather than generated (the form the
few-shot examples show, ``json.dumps``' separators)."""
NAME_MAX_TOKENS = 16
"""Decoding steps allowed for choosing a tool's name (:meth:`LlmEngine._choose_name`)."""
_JSON_CHAR = r'char ::= [^"\\\x00-\x1f] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'


@dataclass(frozen=True)
class _Step:
    written: str
    """Text after the tool's name that no choice of the model's could change."""
    grammar: str | None
    """GBNF for the rest of the call (None: ``written`` ends it)."""
    free_text: bool = False
    """The rest is a plain JSON string's body, then ``closing``: decoded without the grammar
    (:class:`JsonStringWriter`)."""
    max_chars: int | None = None
    """The string's ``maxLength``."""
    closing: str = ""
    """What follows the string's closing quote."""


@dataclass(frozen=True)
class JumpPlan:
    """How a tool call is generated with its fixed JSON written in (:func:`jump_plan`)."""

    steps: dict[str, _Step]
    """Tool name → what follows it."""


class JsonStringWriter:
    """Free text decoded without a grammar, written as the body of a JSON string.

    Inside a tool call's one string argument (``answer``'s text) a grammar only keeps the model
    from writing a raw control character or a bad escape, and ends the string at its first
    unescaped quote; llama.cpp applies it to the whole 49,152-token vocabulary at every step,
    which costs more than the 135M model's forward pass (SmolLM2-135M, one decoding thread, this
    project's 2-core machine, a one-off measurement of a 30-token answer, median of 3: 17–18 ms a
    token with the string grammar, 8 ms without; ``benchmarks`` section ``routing`` measures the
    whole call). Here the
    model samples freely and this writer keeps the JSON valid: the string ends at the first
    unescaped ``"`` (what follows it in that token is dropped, as the grammar would have forbidden
    it), a newline or tab is escaped, another control character is dropped, and a backslash that
    starts no valid escape is written as ``\\\\``. The model's own escapes (``\\"``, ``\\n``,
    ``\\u00e9``) pass unchanged, so the text is the one a grammar-constrained run would make
    wherever the grammar allowed the model's first choice.

    Args:
        max_chars: The string's ``maxLength`` (characters as decoded); None: no limit.
    """

    _ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}

    def __init__(self, max_chars: int | None = None) -> None:
        self.max_chars = max_chars
        self.chars = 0
        self.ended = False
        self._held = ""

    def feed(self, piece: str) -> str:
        """The part of ``piece`` (a decoded token) that belongs in the string, JSON-escaped."""
        s, self._held, out, i = self._held + piece, "", [], 0
        while i < len(s) and not self.ended:
            if self.max_chars is not None and self.chars >= self.max_chars:
                self.ended = True
                break
            c = s[i]
            if c == '"':
                self.ended = True
                break
            if c == "\\":
                nxt = s[i + 1 : i + 2]
                if not nxt or (nxt == "u" and len(s) < i + 6 and re.fullmatch(r"[0-9a-fA-F]*", s[i + 2 :])):
                    self._held = s[i:]  # the rest of the escape is in the next token
                    break
                if nxt in '"\\/bfnrt':
                    out.append(s[i : i + 2])
                    i += 2
                elif nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", s[i + 2 : i + 6]):
                    out.append(s[i : i + 6])
                    i += 6
                else:
                    out.append("\\\\")  # a lone backslash
                    i += 1
            elif ord(c) < 0x20:
                out.append(self._ESCAPES.get(c, ""))
                i += 1
            else:
                out.append(c)
                i += 1
            self.chars += 1
        return "".join(out)

    def close(self) -> str:
        """What ends the string: a held partial escape is written as plain text, then the quote."""
        held, self._held = self._held, ""
        self.ended = True
        return held.replace("\\", "\\\\") + '"'


def jump_plan(schema: dict[str, Any]) -> JumpPlan | None:
    """Jump-forward decoding for a tool-call schema: ``{"oneOf": [{"properties": {"tool": {"const":
    name}, "arguments": {...}}}, ...]}`` (:func:`~assistant.controller.local_llm.action_schema`), or
    None for any other schema.

    A grammar-constrained model spends a decoding step on every token of the JSON even where the
    grammar leaves one choice. Here those tokens are written into the prompt instead, and batched
    into the next prompt evaluation: ``{"tool": "`` before the name; after it, ``", "arguments": ``
    and, when the arguments are one string (``answer``'s text, ``cannot_help``'s reason),
    ``{"text": "`` too, so the first word of a spoken answer is the next token generated. The idea of
    SGLang's compressed finite-state machine (Zheng et al. 2024, "SGLang: Efficient Execution of
    Structured Language Model Programs") and of llguidance's forced tokens. The output is the same
    JSON the one-grammar generation would make, with the separators of ``json.dumps``.
    Measured with SmolLM2-135M on this project's 2-core machine: see ``docs/turn-taking.md``."""
    options = schema.get("oneOf")
    if not isinstance(options, list) or not options:
        return None
    steps: dict[str, _Step] = {}
    for option in options:
        props = option.get("properties") if isinstance(option, dict) else None
        if not isinstance(props, dict) or list(props) != ["tool", "arguments"] or "const" not in props["tool"]:
            return None
        name, args = props["tool"]["const"], props["arguments"]
        if not isinstance(name, str) or not isinstance(args, dict):
            return None
        steps[name] = _arguments_step(args)
    return JumpPlan(steps=steps)


def _arguments_step(args: dict[str, Any]) -> _Step:
    from llama_cpp.llama_grammar import json_schema_to_gbnf  # noqa: PLC0415

    head = '", "arguments": '
    props = args.get("properties") or {}
    closed = args.get("additionalProperties") is False
    if args.get("type") == "object" and closed and not props:
        return _Step(head + "{}}", None)
    if args.get("type") == "object" and closed and len(props) == 1:
        (key, prop), = props.items()
        if key in (args.get("required") or ()) and prop.get("type") == "string" and not ({"enum", "const", "pattern", "format"} & set(prop)):
            n = prop.get("maxLength")
            body = f"char{{0,{int(n)}}}" if isinstance(n, int) else "char*"
            return _Step(head + "{" + json.dumps(key) + ': "', f'root ::= {body} "\\"}}}}"\n{_JSON_CHAR}',
                         free_text=True, max_chars=n if isinstance(n, int) else None, closing="}}")
    gbnf = json_schema_to_gbnf(json.dumps(args))
    # a required argument comes first (llama.cpp's converter puts required properties first):
    # its key is written too, and the grammar goes on from its value
    root = re.search(r'^root ::= "\{" space (\S+)-kv(.*)$', gbnf, re.M)
    kv = re.search(rf'^{re.escape(root.group(1))}-kv ::= "\\"(\w+)\\"" space ":" space (\S+)$', gbnf, re.M) if root else None
    if root and kv and kv.group(1) in (args.get("required") or ()):
        rest = gbnf[: root.start()] + f"root ::= {kv.group(2)}{root.group(2)} \"}}\"" + gbnf[root.end() :]
        return _Step(head + "{" + json.dumps(kv.group(1)) + ": ", rest)
    gbnf = re.sub(r"(?<![\w-])root(?![\w-])", "arguments-root", gbnf)
    return _Step(head, f'root ::= arguments-root "}}"\n{gbnf}')


def decode_threads(config: LlmConfig) -> int:
    """Threads for token generation: ``llm.threads``, or when 0 half the cores (at least one).

    Generation runs while the voice loop's other models use the cores too (Whisper's speculative
    and full-window passes, Smart Turn and the text model at a pause, Piper), and llama.cpp's
    threads wait for each other at every step, so one stalled thread stalls them all. Measured on
    this project's 2-core machine (SmolLM2-135M, a 2,435-token cached prefix, a question and 40
    tokens, median of 5): 2 threads 560 ms alone but 2,061 ms with Whisper decoding alongside; 1
    thread 696 ms alone, 1,088 ms alongside. In the turn benchmark (last voiced frame → first reply
    sample, 20 questions, real-time input with room noise) the local LLM's turns went from 2,101 to
    1,476 and 1,520 ms p50 in two runs (generation 1,589 → 872 and 1,065 ms). Prompt evaluation (a batch, at load and for
    each request's new tokens) still uses every core."""
    return config.threads or max(1, (os.cpu_count() or 1) // 2)


class LlmEngine:
    """A loaded model.

    Args:
        path: The ``.gguf`` file.
        config: Threads, context length, sampling.

    Raises:
        ModelError: The file is missing, is not GGUF, or llama.cpp cannot load it.
        MissingDependencyError: llama-cpp-python is not installed.
    """

    def __init__(self, path: Path, config: LlmConfig, *, jump_forward: bool = True, free_text: bool = True) -> None:
        llama_cpp = require("llama_cpp", "llm", "the local LLM")
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"LLM file {path} does not exist", hint="run `assistant models pull smollm2-135m-instruct` or fix llm.model")
        with open(path, "rb") as f:
            if f.read(4) != b"GGUF":
                raise ModelError(f"{path} is not a GGUF model file", hint="llm.model must name a .gguf file (llama.cpp format)")
        self.config = config
        self.path = path
        try:
            with LOAD_LOCK:
                self.llm = llama_cpp.Llama(
                    model_path=str(path), n_ctx=config.context, n_threads=decode_threads(config),
                    n_threads_batch=os.cpu_count() or 1, seed=config.seed, verbose=False,
                )
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"llama.cpp cannot load {path}: {exc}", hint="the file is corrupt or of an unsupported architecture; `assistant models verify`") from None
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter  # noqa: PLC0415

        meta = self.llm.metadata
        template = meta.get("tokenizer.chat_template") or CHATML
        if "tokenizer.chat_template" not in meta:
            log.warning("%s has no chat template in its metadata; using ChatML", path.name)
        eos = self.llm.detokenize([self.llm.token_eos()]).decode(errors="ignore")
        bos = self.llm.detokenize([self.llm.token_bos()]).decode(errors="ignore") if self.llm.token_bos() >= 0 else ""
        self._formatters = {
            gen: Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos, add_generation_prompt=gen) for gen in (True, False)
        }
        self.name = meta.get("general.name", path.stem)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="llm")
        self._built: dict[str, Any] = {}
        self._grammar_cls = llama_cpp.LlamaGrammar
        self._lock = threading.Lock()
        self._speculation: _Generation | None = None
        self.jump_forward = jump_forward
        """Write a tool call's fixed JSON instead of generating it (:func:`jump_plan`)."""
        self.free_text = free_text
        """With :attr:`jump_forward`: decode a call's one free string argument without the grammar
        (:class:`JsonStringWriter`)."""

    def close(self) -> None:
        self.cancel_speculation()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ prompts and grammars

    def render(self, messages: list[dict[str, str]], generation_prompt: bool = True) -> str:
        """The chat template applied to ``messages``."""
        return self._formatters[generation_prompt](messages=messages).prompt

    def _cached(self, key: str, build: Callable[[], Any]) -> Any:
        """What ``build`` makes for ``key`` (a grammar, a jump plan), made once; at most 64 kept.
        Keys are the schema or grammar text as written: property order matters (an action's
        "tool" must come before its "arguments")."""
        if key not in self._built:
            if len(self._built) > 64:
                self._built.clear()
            self._built[key] = build()
        return self._built[key]

    def grammar(self, schema: dict[str, Any]):
        """A llama.cpp grammar forcing output that validates against the JSON schema (cached)."""
        text = json.dumps(schema)
        return self._cached("schema " + text, lambda: self._grammar_cls.from_json_schema(text, verbose=False))

    def _gbnf(self, text: str):
        """A llama.cpp grammar from GBNF text (cached)."""
        return self._cached("gbnf " + text, lambda: self._grammar_cls.from_string(text, verbose=False))

    def _plan(self, schema: dict[str, Any]) -> "JumpPlan | None":
        """:func:`jump_plan` of ``schema`` (cached: ~7 ms for this project's 40-tool action schema)."""
        return self._cached("plan " + json.dumps(schema), lambda: jump_plan(schema))

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode(), add_bos=False, special=True))

    # ------------------------------------------------------------------ generation

    def _cached_prefix(self, tokens: list[int]) -> int:
        n = 0
        for a, b in zip(self.llm._input_ids[: self.llm.n_tokens], tokens):
            if a != b:
                break
            n += 1
        return n

    def _generate(self, prompt: str, schema: dict[str, Any] | None, max_tokens: int, on_text, stop: threading.Event) -> CompletionStats:
        with self._lock:
            plan = self._plan(schema) if self.jump_forward and schema is not None else None
            if plan is None:
                return self._complete(prompt, self.grammar(schema) if schema is not None else None, max_tokens, on_text, stop, CompletionStats())
            # a tool call: the JSON around the choices is written, not generated (jump-forward decoding)
            stats = CompletionStats()
            on_text(ACTION_OPENING)
            t0 = time.perf_counter()
            name = self._choose_name(prompt + ACTION_OPENING, plan, stop, stats)
            step = plan.steps.get(name)
            if step is None or stop.is_set():  # stopped, or out of steps mid-name: the caller sees invalid JSON, as it would have
                return stats
            on_text(name + step.written)
            if stop.is_set():  # the caller needs no more (a speculation's stop_when), or went away
                stats.total_ms = (time.perf_counter() - t0) * 1000.0
                return stats
            left, prompt = max(1, max_tokens - stats.completion_tokens), prompt + ACTION_OPENING + name + step.written
            if step.free_text and self.free_text:
                writer = JsonStringWriter(step.max_chars)

                def write(piece: str) -> None:
                    if text := writer.feed(piece):
                        on_text(text)

                self._complete(prompt, None, left, write, stop, stats, until=lambda: writer.ended)
                if not stop.is_set():  # ended by its quote, the end-of-turn token or the token limit: the call is closed
                    on_text(writer.close() + step.closing)
            elif step.grammar is not None:
                self._complete(prompt, self._gbnf(step.grammar), left, on_text, stop, stats)
            stats.total_ms = (time.perf_counter() - t0) * 1000.0
            return stats

    def _token_ids(self) -> dict[bytes, int]:
        """Each token's bytes → its id (built once: ~0.1 s for a 49,152-token vocabulary)."""
        def build() -> dict[bytes, int]:
            ids: dict[bytes, int] = {}
            for i in range(self.llm.n_vocab()):
                if (b := self.llm.detokenize([i])) and b not in ids:
                    ids[b] = i
            return ids
        return self._cached("token ids", build)

    def _choose_name(self, prompt: str, plan: JumpPlan, stop: threading.Event, stats: CompletionStats) -> str:
        """The tool the model calls after ``prompt`` (which ends with :data:`ACTION_OPENING`): of
        the plan's names, the one its most likely tokens spell; "" if ``stop`` was set first.

        This is what a grammar of the names (``root ::= ("answer" | "cannot_help" | ...) "\\""``)
        with greedy sampling chooses — at each step the token with the highest logit among those
        that keep the text a prefix of some ``name"`` — without llama.cpp applying that grammar
        to the whole vocabulary at every step and without a step once one name is left: the rest
        of the name is written with the arguments' opening and evaluated in their batch. Greedy,
        not sampled at ``llm.temperature``: the choice of a tool should not be left to chance.
        Measured with SmolLM2-135M on this project's 2-core machine (a one-off comparison, 8
        requests, median of 3 each, after the request's ~18 new tokens were evaluated in ~90 ms):
        the grammar took 50 ms more for ``answer``, 85–190 ms more for 4–6-token names; this
        takes 0–10 ms for the same choices.
        """
        import numpy as np  # noqa: PLC0415

        tokens = self.llm.tokenize(prompt.encode(), add_bos=False, special=True)
        stats.prompt_tokens, stats.cached_tokens = len(tokens), self._cached_prefix(tokens)
        t0 = time.perf_counter()
        self.llm.n_tokens = min(stats.cached_tokens, len(tokens) - 1)  # at least one evaluated, for its logits
        pending = tokens[self.llm.n_tokens :]
        ids, n_vocab = self._token_ids(), self.llm.n_vocab()
        typed, live, name = "", [n + '"' for n in plan.steps], ""
        for _ in range(NAME_MAX_TOKENS):
            if len(live) == 1:
                name = live[0][:-1]
                break
            allowed: dict[int, str] = {}
            for rest in (c[len(typed):] for c in live):
                for k in range(1, len(rest) + 1):
                    if (i := ids.get(rest[:k].encode())) is not None:
                        allowed[i] = rest[:k]
            if stop.is_set() or not allowed:
                break
            self.llm.eval(pending)
            logits = np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(n_vocab,))
            choices = np.fromiter(allowed, dtype=np.int64, count=len(allowed))
            token = int(choices[int(np.argmax(logits[choices]))])
            if stats.completion_tokens == 0:
                stats.first_token_ms = (time.perf_counter() - t0) * 1000.0
            stats.completion_tokens += 1
            typed += allowed[token]
            live = [c for c in live if c.startswith(typed)]
            pending = [token]
        stats.total_ms = (time.perf_counter() - t0) * 1000.0
        return name

    def _complete(self, prompt: str, grammar: Any, max_tokens: int, on_text, stop: threading.Event, stats: CompletionStats,
                  until: Callable[[], bool] | None = None) -> CompletionStats:
        """Generate after ``prompt`` (one llama.cpp completion, reusing the cached token prefix),
        adding to ``stats``: the first call sets the prompt's counts and the time to first token.
        Ends early when ``stop`` is set or ``until()`` is true after a token."""
        tokens = self.llm.tokenize(prompt.encode(), add_bos=False, special=True)
        first = stats.prompt_tokens == 0
        if first:
            stats.prompt_tokens, stats.cached_tokens = len(tokens), self._cached_prefix(tokens)
        t0 = time.perf_counter() - stats.total_ms / 1000.0
        cfg = self.config
        for chunk in self.llm.create_completion(
            tokens, max_tokens=max_tokens, temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k,
            grammar=grammar, stream=True, seed=cfg.seed, repeat_penalty=1.15,
        ):
            if stats.completion_tokens == 0:
                stats.first_token_ms = (time.perf_counter() - t0) * 1000.0
            stats.completion_tokens += 1
            on_text(chunk["choices"][0]["text"])
            if stop.is_set() or (until is not None and until()):
                break
        stats.total_ms = (time.perf_counter() - t0) * 1000.0
        return stats

    def _start(self, prompt: str, schema: dict[str, Any] | None, max_tokens: int | None,
               stop_when: Callable[[str], bool] | None = None) -> "_Generation":
        """Queue a generation on the worker thread; its pieces, then its stats (or its error), go to
        a queue. ``stop_when`` (the text so far → stop now) ends it early."""
        loop = asyncio.get_running_loop()
        gen = _Generation(key=(prompt, json.dumps(schema, sort_keys=True), max_tokens or self.config.max_tokens))
        made = ""

        def on_text(piece: str) -> None:
            nonlocal made
            loop.call_soon_threadsafe(gen.queue.put_nowait, piece)
            if stop_when is not None:
                made += piece
                if stop_when(made):
                    gen.finished_early = True
                    gen.stop.set()

        def run() -> None:
            try:
                stats = self._generate(prompt, schema, max_tokens or self.config.max_tokens, on_text, gen.stop)
                loop.call_soon_threadsafe(gen.queue.put_nowait, stats)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                loop.call_soon_threadsafe(gen.queue.put_nowait, exc)

        gen.future = loop.run_in_executor(self._pool, run)
        return gen

    def speculate(self, prompt: str, *, schema: dict[str, Any] | None = None, max_tokens: int | None = None,
                  stop_when: Callable[[str], bool] | None = None) -> None:
        """Start generating ``prompt`` before anyone asks for it (preemptive generation).

        The voice loop calls this (through the router) at a pause whose words may be the whole
        request, with the request as heard so far. If the next :meth:`stream` asks for the
        same prompt, schema and token limit, it takes over this generation — the tokens already
        made, then the rest as they come — so the time the endpointer spent waiting for the user
        to go on was also generation time. Any other call, or :meth:`cancel_speculation`, stops it
        at the next token. Only tokens are made ahead; acting on them (a tool call) is the
        caller's, after the request is final. The same idea as LiveKit Agents'
        ``preemptive_generation``. ``stop_when`` (the text made so far → True) ends the generation
        there: what comes after would not be used (a refusal's reason), and the speculation counts
        as done (:meth:`speculation_done`) sooner.
        """
        self.cancel_speculation()
        self._speculation = self._start(prompt, schema, max_tokens, stop_when)
        self._speculation.speculative = True

    def cancel_speculation(self) -> None:
        """Stop a generation started by :meth:`speculate` that no one has taken over (no-op without one)."""
        spec, self._speculation = self._speculation, None
        if spec is not None:
            spec.stop.set()

    def speculation_done(self) -> "asyncio.Future | None":
        """Done when the generation :meth:`speculate` started has ended (made, stopped or failed;
        its result stays for the :meth:`stream` that takes it over); None without one."""
        spec = self._speculation
        return spec.future if spec is not None else None

    @property
    def speculating(self) -> bool:
        """A generation started by :meth:`speculate` waits to be taken over."""
        return self._speculation is not None

    async def stream(self, prompt: str, *, schema: dict[str, Any] | None = None, max_tokens: int | None = None) -> AsyncIterator[str | CompletionStats]:
        """Generate on the worker thread; yields text pieces as they come, then the stats.

        A generation :meth:`speculate` started for the same prompt, schema and ``max_tokens`` is
        taken over (its stats have ``preemptive_ms`` > 0); any other is stopped. Cancelling the
        consumer stops generation at the next token.
        """
        spec, self._speculation = self._speculation, None
        key = (prompt, json.dumps(schema, sort_keys=True), max_tokens or self.config.max_tokens)
        if spec is not None and spec.key == key and (not spec.stop.is_set() or spec.finished_early):
            gen = spec
        else:
            if spec is not None:
                spec.stop.set()
            gen = self._start(prompt, schema, max_tokens)
        taken_at = time.perf_counter()
        try:
            while True:
                item = await gen.queue.get()
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, CompletionStats) and gen.speculative:
                    item.preemptive_ms = (taken_at - gen.started) * 1000.0
                yield item
                if isinstance(item, CompletionStats):
                    return
        finally:
            gen.stop.set()
            fut = gen.future
            if fut is not None and not fut.done():
                try:
                    await asyncio.shield(fut)
                except Exception:  # noqa: BLE001
                    pass

    WARM_CHUNK_TOKENS = 64
    """Tokens evaluated per step while warming: a warm-up asked to stop ends within one step
    (~0.3 s for SmolLM2-135M on 2 cores)."""

    def warm(self, prompt: str, stop: threading.Event | None = None) -> CompletionStats:
        """Evaluate ``prompt`` into the KV cache (the stable prefix), :data:`WARM_CHUNK_TOKENS` at a
        time; the next request that starts with it only evaluates what follows.

        Args:
            stop: Set to end the warm-up early (what was evaluated stays cached).
        """
        with self._lock:
            self._token_ids()  # built here, not by the first tool call
            tokens = self.llm.tokenize(prompt.encode(), add_bos=False, special=True)
            stats = CompletionStats(prompt_tokens=len(tokens), cached_tokens=self._cached_prefix(tokens))
            t0 = time.perf_counter()
            self.llm.n_tokens = stats.cached_tokens  # keep the part already evaluated, drop the rest
            for i in range(stats.cached_tokens, len(tokens), self.WARM_CHUNK_TOKENS):
                if stop is not None and stop.is_set():
                    break
                self.llm.eval(tokens[i : i + self.WARM_CHUNK_TOKENS])
            stats.total_ms = (time.perf_counter() - t0) * 1000.0
            return stats

    def reset(self) -> None:
        """Forget the KV cache (the next prompt is evaluated from scratch)."""
        with self._lock:
            self.llm.reset()


def load_llm(path: Path, config: LlmConfig) -> LlmEngine:
    """Load a GGUF model (see :class:`LlmEngine`)."""
    return LlmEngine(path, config)
