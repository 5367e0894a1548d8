"""The controller: local LLM tier (real SmolLM2-135M GGUF), follow-ups, the remote tiers against a
real OpenAI-compatible server on loopback (llama-cpp-python's own server with the same GGUF)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from assistant.app import build_controller
from assistant.bus import EventBus
from assistant.config import Config
from assistant.controller.local_llm import AnswerStream, LocalController, action_schema
from assistant.controller.memory import Conversation
from assistant.controller.redact import Redactor
from assistant.events import RemoteCall, RouteDecided, StageTiming, ToolCallFinished, ToolCallStarted
from assistant.pipeline import Pipeline
from assistant.speech.tts import SentenceSplitter
from assistant.testing.llm import ScriptedLLM
from assistant.toolkit import ToolRegistry

from .conftest import TEST_MODELS, need_test_models
from .servers import RecordingProxy, free_port, llama_server

ROOT = Path(__file__).resolve().parents[1]
TOOL_CHOICE = yaml.safe_load((ROOT / "benchmarks" / "data" / "tool_choice.yaml").read_text())
GGUF = TEST_MODELS / "smollm2-135m-instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _cfg(config: Config, **overrides) -> Config:
    return config.with_overrides({"tools.confirm_risks": [], **overrides})


async def _ask(pipeline: Pipeline, events: list, text: str) -> tuple[str, list, list]:
    n = len(events)
    reply = await pipeline.handle_text(text, speak=False)
    new = events[n:]
    calls = [(e.tool, e.arguments) for e in new if isinstance(e, ToolCallStarted)]
    routes = [(e.route, e.reason) for e in new if isinstance(e, RouteDecided)]
    return reply, calls, routes


# ---------------------------------------------------------------------------- the real local model


def test_answer_text_is_streamed_out_of_the_json():
    s = AnswerStream()
    out = "".join(s.feed(p) for p in ['{"tool": "ans', 'wer", "arguments": {"te', 'xt": "It is 5\\"', ' o\\u0027clock.', '"}}'])
    assert out == 'It is 5" o\'clock.'
    assert json.loads(s.raw)["arguments"]["text"] == 'It is 5" o\'clock.'


def test_generation_uses_half_the_cores_and_prompt_evaluation_all_of_them(config):
    """``llm.threads`` 0: token generation on half the cores (the voice loop's other models share
    them; llama.cpp's threads stall together), prompt evaluation on every core; a number set is
    taken as it is (real SmolLM2-135M)."""
    import os

    from assistant.config import LlmConfig
    from assistant.controller.llm_engine import LlmEngine, decode_threads

    need_test_models()
    cores = os.cpu_count() or 1
    assert decode_threads(LlmConfig()) == max(1, cores // 2) and decode_threads(LlmConfig(threads=3)) == 3
    engine = LlmEngine(GGUF, LlmConfig())
    try:
        assert engine.llm.n_threads == max(1, cores // 2) and engine.llm.n_threads_batch == cores
    finally:
        engine.close()


async def test_constrained_output_is_always_a_valid_call(config):
    """Every action SmolLM2 writes under the grammar parses and names a real tool with valid arguments."""
    need_test_models()
    bus = EventBus()
    events = bus.record()
    controller = await build_controller(_cfg(config), bus)
    local = controller.router.local
    assert local is not None
    try:
        tools = sorted(controller.registry.tools.values(), key=lambda t: t.name)
        choices = local._choices()
        names = set(choices["home_turn_on"]["name"])
        for case in TOOL_CHOICE[:6]:
            prompt = local.engine.render([*local.prefix_messages(), {"role": "user", "content": case["request"]}])
            schema = action_schema(tools, choices, after_tool=False)
            raw = ""
            async for piece in local.engine.stream(prompt, schema=schema, max_tokens=160):
                if isinstance(piece, str):
                    raw += piece
            action = json.loads(raw, strict=False)  # never unparseable (strings may hold raw newlines)
            jsonschema.validate(action, schema)
            if action["tool"] in controller.registry.tools:
                controller.registry.get(action["tool"]).validate(action["arguments"])
                if action["tool"].startswith("home_") and action["arguments"].get("name"):
                    assert action["arguments"]["name"] in names  # no invented device
        # and through the whole loop: no call is ever rejected for its name or arguments
        for case in TOOL_CHOICE[6:14]:
            async for _ in local.respond(case["request"], turn=1, conversation=Conversation()):
                pass
        finished = [e for e in events if isinstance(e, ToolCallFinished)]
        assert all("Bad arguments" not in e.error and "no tool called" not in e.error for e in finished)
        assert all(e.tool in controller.registry.tools for e in events if isinstance(e, ToolCallStarted))
    finally:
        await controller.close()


def test_a_tool_calls_fixed_json_is_written_not_generated():
    """Jump-forward decoding: the plan writes ``{"tool": "``, and after the name everything up to the
    first choice (a one-string argument's opening quote, a required argument's key); only tool-call
    schemas get one."""
    from assistant.controller.llm_engine import jump_plan

    text = {"type": "object", "properties": {"text": {"type": "string", "maxLength": 240}}, "required": ["text"], "additionalProperties": False}
    args = {"type": "object", "properties": {"name": {"enum": ["Kitchen Light"]}, "brightness": {"type": "integer"}}, "required": ["name"], "additionalProperties": False}
    empty = {"type": "object", "properties": {}, "additionalProperties": False}
    schema = {"oneOf": [{"type": "object", "properties": {"tool": {"const": n}, "arguments": a}, "required": ["tool", "arguments"], "additionalProperties": False}
                        for n, a in (("answer", text), ("light_set", args), ("done", empty))]}
    plan = jump_plan(schema)
    assert plan is not None and set(plan.steps) == {"answer", "light_set", "done"}
    assert plan.steps["answer"].written == '", "arguments": {"text": "' and "240" in plan.steps["answer"].grammar
    assert plan.steps["done"].written == '", "arguments": {}}' and plan.steps["done"].grammar is None
    assert plan.steps["light_set"].written == '", "arguments": {"name": ' and "Kitchen Light" in plan.steps["light_set"].grammar  # a required argument's key
    optional = jump_plan({"oneOf": [{"type": "object", "properties": {"tool": {"const": "t"}, "arguments": {**args, "required": []}}}]})
    assert optional is not None and optional.steps["t"].written == '", "arguments": '
    assert jump_plan(text) is None and jump_plan({"oneOf": [text]}) is None


async def _calls_each_way(config: Config, setting: str, requests: list[str]) -> dict[bool, list[tuple[dict, Any, str]]]:
    """Each request's first tool call from the real SmolLM2-135M under the action schema of every
    tool, with the engine's ``setting`` (``jump_forward``, ``free_text``) on, then off: (the call,
    its :class:`CompletionStats`, the raw text) per request, each call validated against the schema."""
    need_test_models()
    controller = await build_controller(_cfg(config), EventBus())
    local = controller.router.local
    made: dict[bool, list[tuple[dict, Any, str]]] = {True: [], False: []}
    try:
        tools = sorted(controller.registry.tools.values(), key=lambda t: t.name)
        schema = action_schema(tools, local._choices(), after_tool=False)
        for on in (True, False):
            setattr(local.engine, setting, on)
            for request in requests:
                prompt = local.engine.render([*local.prefix_messages(), {"role": "user", "content": request}])
                raw, stats = "", None
                async for piece in local.engine.stream(prompt, schema=schema, max_tokens=160):
                    if isinstance(piece, str):
                        raw += piece
                    else:
                        stats = piece
                action = json.loads(raw, strict=False)  # the one-grammar run may write a raw newline in a string
                jsonschema.validate(action, schema)
                made[on].append((action, stats, raw))
    finally:
        await controller.close()
    return made


async def test_a_tools_name_is_the_one_a_grammar_of_the_names_picks_greedily(config):
    """``LlmEngine._choose_name`` picks, without a grammar over the vocabulary, the name llama.cpp's
    grammar of the names picks at temperature 0, for answers and tools, also where one name begins
    another ("timer" / "timer_start"), and takes no more steps (real SmolLM2-135M)."""
    import threading

    from assistant.controller.llm_engine import ACTION_OPENING, CompletionStats, JumpPlan, _Step

    need_test_models()
    controller = await build_controller(_cfg(config), EventBus())
    local = controller.router.local
    engine = local.engine
    try:
        names = sorted({*controller.registry.tools, "answer", "cannot_help", "timer"})
        plan = JumpPlan(steps={n: _Step("", None) for n in names})
        grammar = engine._gbnf("root ::= (" + " | ".join(json.dumps(n) for n in names) + ') "\\""')
        picked = []
        for request in ["What is the capital of France?", "Tell me a joke.", "Set a timer for five minutes", "Turn on the kitchen light",
                        "Book me a flight to Paris", "Réponds en français : quelle heure est-il ?"]:
            prompt = engine.render([*local.prefix_messages(), {"role": "user", "content": request}]) + ACTION_OPENING
            tokens = engine.llm.tokenize(prompt.encode(), add_bos=False, special=True)
            out = engine.llm.create_completion(tokens, max_tokens=16, temperature=0.0, grammar=grammar, repeat_penalty=1.0)
            by_grammar = out["choices"][0]["text"].removesuffix('"')
            stats = CompletionStats()
            name = engine._choose_name(prompt, plan, threading.Event(), stats)
            assert name == by_grammar, (request, name, by_grammar)
            assert 1 <= stats.completion_tokens <= out["usage"]["completion_tokens"]
            picked.append(name)
        assert len(set(picked)) >= 3, picked  # answers, refusals and tools, not one name for all
    finally:
        await controller.close()


async def test_jump_forward_generates_fewer_tokens_for_the_same_valid_calls(config):
    """With the fixed JSON written in, the real SmolLM2-135M picks the same tools, every call is
    schema-valid, and the same call costs at least 8 fewer generated tokens (the one-grammar
    generation makes every token of the JSON)."""
    made = await _calls_each_way(config, "jump_forward", ["What is the capital of France?", "Who painted the Mona Lisa?", TOOL_CHOICE[0]["request"]])
    assert [a["tool"] for a, _, _ in made[True]] == [a["tool"] for a, _, _ in made[False]]
    same = [(jumped.completion_tokens, whole.completion_tokens) for (a, jumped, _), (b, whole, _) in zip(made[True], made[False]) if a == b]
    assert same, made  # "The capital of France is Paris." both ways (a fixed sampling seed)
    assert all(jumped <= whole - 8 for jumped, whole in same), made


def test_free_text_is_written_as_a_valid_json_string():
    """The answer's text decoded without a grammar: it ends at the first unescaped quote (the rest
    of that token dropped), escapes split over tokens survive, a raw newline is escaped, a lone
    backslash is written as one, and ``maxLength`` ends it."""
    from assistant.controller.llm_engine import JsonStringWriter

    def write(pieces: list[str], max_chars: int | None = None) -> tuple[str, bool]:
        w = JsonStringWriter(max_chars)
        body = "".join(w.feed(p) for p in pieces)
        ended = w.ended
        return body + w.close(), ended

    cases = [
        (["The sky", " is blue", '."}', "}"], "The sky is blue.", True),
        (['He said \\', '"hi\\"', ' twice",'], 'He said "hi" twice', True),
        (["Line one\n", "line\ttwo"], "Line one\nline\ttwo", False),
        (["a \\d path", " C:\\", "\\x"], "a \\d path C:\\x", False),
        (["caf\\u00", "e9 au lait"], "caf\u00e9 au lait", False),
        (["ends on \\u0"], "ends on \\u0", False),
        (["bell\x07 rings"], "bell rings", False),
    ]
    for pieces, text, ended in cases:
        body, was_ended = write(pieces)
        assert body.endswith('"') and json.loads('"' + body) == text and was_ended == ended, (pieces, body)
    body, ended = write(["abcdef", "ghij"], max_chars=7)
    assert ended and json.loads('"' + body) == "abcdefg"


async def test_answers_decoded_without_a_grammar_are_the_same_valid_calls(config):
    """With the real SmolLM2-135M, a tool call whose answer text is decoded freely (the writer
    keeping it JSON) is schema-valid, strict JSON, and the same call the string grammar makes, for
    answers and for a home command (whose arguments keep their grammar)."""
    made = await _calls_each_way(config, "free_text", ["What is the capital of France?", "Who painted the Mona Lisa?", "Tell me a joke.",
                                                       TOOL_CHOICE[0]["request"]])
    assert [a for a, _, _ in made[True]] == [a for a, _, _ in made[False]], made
    assert all(json.loads(raw) for _, _, raw in made[True])  # no raw control character in a freely decoded string
    assert sum(a["tool"] == "answer" for a, _, _ in made[True]) >= 2, made


async def test_a_speculation_stops_where_its_caller_needs_no_more(config):
    """``LlmEngine.speculate(stop_when=...)``: the generation started ahead ends as soon as the text
    made so far satisfies the caller (a refusal's name: its reason is never used), so it counts as
    done sooner, and the request that takes it over gets exactly that text (real SmolLM2-135M)."""
    need_test_models()
    controller = await build_controller(_cfg(config), EventBus())
    local = controller.router.local
    engine = local.engine
    try:
        prompt = engine.render([*local.prefix_messages(), {"role": "user", "content": "What is the capital of France?"}])
        schema = action_schema(sorted(local.registry.tools.values(), key=lambda t: t.name)[:3], local._choices(), after_tool=False)
        whole = "".join([p async for p in engine.stream(prompt, schema=schema) if isinstance(p, str)])
        engine.speculate(prompt, schema=schema, stop_when=lambda raw: '"arguments"' in raw)
        await engine.speculation_done()
        taken = [p async for p in engine.stream(prompt, schema=schema)]
        text = "".join(p for p in taken if isinstance(p, str))
        assert '"arguments"' in text and whole.startswith(text) and len(text) < len(whole) - 5, (text, whole)
        assert taken[-1].preemptive_ms > 0  # the same generation, taken over
    finally:
        await controller.close()


async def test_prefix_cache_makes_later_turns_cheap(config):
    need_test_models()
    bus = EventBus()
    events = bus.record()
    controller = await build_controller(_cfg(config), bus)
    try:
        pipeline = Pipeline(config, None, responder=controller.router, bus=bus)
        await _ask(pipeline, events, "what is the capital of peru")
        timings = [e for e in events if getattr(e, "stage", "") == "llm_first_token"]
        detail = timings[0].detail  # "step 1: N prompt tokens, M cached"
        prompt_tokens, cached = [int(x) for x in __import__("re").findall(r"(\d+) (?:prompt tokens|cached)", detail)]
        assert cached > 0.8 * prompt_tokens, detail  # the warm-up evaluated the stable prefix
    finally:
        await controller.close()


async def test_a_request_prepared_at_a_pause_takes_over_the_generation_started_then(config):
    """Preemptive generation: the router starts the local LLM on the words heard at a pause
    (``Router.prepare``); the final request with the same words takes that generation over, and
    the same request unprepared gives the same reply. A request the fast path understands is not
    prepared, and other words stop what was prepared (real SmolLM2-135M)."""
    need_test_models()
    bus = EventBus()
    events = bus.record()
    controller = await build_controller(_cfg(config), bus)
    router = controller.router
    engine = router.local.engine
    try:
        pipeline = Pipeline(config, None, responder=router, bus=bus)
        question = "who wrote the book war and peace"
        plain, _, _ = await _ask(pipeline, events, question)
        router.conversation.clear()
        assert router.prepare(question) and engine.speculating
        n = len(events)
        prepared, _, routes = await _ask(pipeline, events, question)
        timing = [e.detail for e in events[n:] if getattr(e, "stage", "") == "llm_first_token"][0]
        assert "before the request was final (preemptive)" in timing and not engine.speculating, timing
        assert routes[0][0] == "local_llm" and prepared == plain, (prepared, plain)

        assert not router.prepare("turn on the kitchen light") and not engine.speculating  # the fast path answers it
        assert router.prepare("who painted the mona lisa") and engine.speculating
        n = len(events)
        await _ask(pipeline, events, "what is the capital of peru")
        timing = [e.detail for e in events[n:] if getattr(e, "stage", "") == "llm_first_token"][0]
        assert "preemptive" not in timing and not engine.speculating, timing
        assert router.prepare("who painted the mona lisa") and engine.speculating
        router.unprepare()
        assert not engine.speculating
        router.conversation.clear()
        assert router.prepare("who painted the mona lisa")
        reply, calls, routes = await _ask(pipeline, events, "turn on the kitchen light")
        assert routes[0][0] == "fast_path" and not engine.speculating  # the prepared generation was stopped
    finally:
        await controller.close()


async def test_the_step_limit_bounds_the_loop(config):
    """A model that keeps calling tools is stopped after llm.max_steps calls."""
    cfg = _cfg(config, **{"llm.max_steps": 2})
    bus = EventBus()
    reg = await ToolRegistry.create(cfg, bus)
    llm = ScriptedLLM([
        {"tool": "clock_time", "arguments": {}},
        {"tool": "clock_date", "arguments": {}},
        {"tool": "clock_time", "arguments": {}},
    ])
    local = LocalController(llm, reg, bus, cfg.llm)
    pieces = [p async for p in local.respond("what time and day is it", turn=1, conversation=Conversation())]
    result = pieces[-1]
    assert result.tool_calls == ["clock_time", "clock_date"] and result.steps == 3
    await reg.close()


async def test_a_refusal_stops_generation_at_its_name(config):
    """``cannot_help``'s reason is only logged: once the model has chosen it, nothing more is
    generated (its ~20 tokens held up the next tier), and the request goes on as refused."""
    cfg = _cfg(config)
    bus = EventBus()
    events = bus.record()
    reg = await ToolRegistry.create(cfg, bus)
    llm = ScriptedLLM([{"tool": "cannot_help", "arguments": {"reason": "I do not know the tide times for this coast today"}}], chunk=4)
    local = LocalController(llm, reg, bus, cfg.llm)
    conv = Conversation()
    pieces = [p async for p in local.respond("when is high tide", turn=1, conversation=conv)]
    result = pieces[-1]
    assert not result.handled and result.reason == "the local model cannot help" and pieces[:-1] == []
    assert llm.streamed[0].startswith('{"tool": "cannot_help"') and "tide" not in llm.streamed[0], llm.streamed
    timing = [e.detail for e in events if isinstance(e, StageTiming) and e.stage == "llm"]
    assert timing and "stopped before its reason" in timing[0]
    await reg.close()


async def test_an_answers_first_clause_is_spoken_before_its_sentence_is_generated(config):
    """The first sentence of an answer is checked for claimed actions before it is spoken; a clause
    of it that claims nothing ("The largest planet is Jupiter,") goes out as soon as it is
    generated, so speech can start while the rest is made. A claim in the opening clause is still
    never spoken."""
    cfg = _cfg(config)
    bus = EventBus()
    reg = await ToolRegistry.create(cfg, bus)
    llm = ScriptedLLM([{"tool": "answer", "arguments": {"text": "The largest planet is Jupiter, a gas giant. It has many moons."}},
                       {"tool": "answer", "arguments": {"text": "Sure, I have turned on the lights for you."}}], chunk=4)
    local = LocalController(llm, reg, bus, cfg.llm)
    seen: list[tuple[str, str]] = []
    async for p in local.respond("what is the largest planet", turn=1, conversation=Conversation()):
        if isinstance(p, str):
            seen.append((p, llm.streamed[-1]))
    assert seen[0][0] == "The largest planet is Jupiter, " and "gas giant" not in seen[0][1], seen
    splitter = SentenceSplitter(cfg.tts.first_clause_words)  # what the speaker makes of it: the clause is said at once
    assert splitter.feed(seen[0][0]) == ["The largest planet is Jupiter,"]
    assert "".join(p for p, _ in seen) == "The largest planet is Jupiter, a gas giant. It has many moons.", seen
    pieces = [p async for p in local.respond("make it brighter in here", turn=2, conversation=Conversation())]
    assert pieces[:-1] == [] and not pieces[-1].handled, pieces
    await reg.close()


async def test_a_multi_step_plan_runs_each_step_and_reads_results(config):
    """The plan–act–observe loop: two tool calls, each result fed back, then done."""
    cfg = _cfg(config)
    bus = EventBus()
    events = bus.record()
    reg = await ToolRegistry.create(cfg, bus)
    llm = ScriptedLLM([
        {"tool": "home_turn_off", "arguments": {"floor": "Ground Floor", "domain": ["light"]}},
        {"tool": "timer_start", "arguments": {"minutes": 10}},
        {"tool": "done", "arguments": {}},
    ])
    local = LocalController(llm, reg, bus, cfg.llm)
    conv = Conversation()
    pieces = [p async for p in local.respond("turn off all the lights downstairs and give me ten minutes", turn=1, conversation=conv)]
    spoken = "".join(p for p in pieces if isinstance(p, str))
    assert spoken == "Turned off the lights on the ground floor. Timer set for 10 minutes."
    assert [e.tool for e in events if isinstance(e, ToolCallStarted)] == ["home_turn_off", "timer_start"]
    assert "Tool result:" in llm.prompts[1] and "Turned off the lights" in llm.prompts[1]  # observed
    assert "done" not in json.dumps(llm.schemas[0]) and "done" in json.dumps(llm.schemas[1])
    home = reg.service("home").snapshot()
    assert all(e.state == "off" for e in home.entities if e.domain == "light" and e.area_id in ("living_room", "kitchen", "hallway"))
    await reg.close()


async def test_follow_ups(config):
    cfg = _cfg(config, **{"llm.enabled": False})
    bus = EventBus()
    events = bus.record()
    controller = await build_controller(cfg, bus)
    try:
        pipeline = Pipeline(cfg, None, responder=controller.router, bus=bus)
        reply, calls, _ = await _ask(pipeline, events, "turn on the lights in the living room")
        assert calls == [("home_turn_on", {"area": "Living Room", "domain": ["light"]} | {k: None for k in ("name", "floor", "device_class")})]
        reply, calls, routes = await _ask(pipeline, events, "and the kitchen too")
        assert calls[0][0] == "home_turn_on" and calls[0][1]["area"] == "Kitchen" and calls[0][1]["domain"] == ["light"]
        assert routes[0][0] == "fast_path" and "follow-up" in routes[0][1]
        assert reply == "Turned on the lights in the kitchen."
        await _ask(pipeline, events, "set the temperature to 21 degrees")
        reply, calls, _ = await _ask(pipeline, events, "make it warmer")
        assert calls[0][0] == "home_set_temperature" and calls[0][1]["temperature"] == 22.0 and calls[0][1]["name"] == "Thermostat"
        reply, calls, _ = await _ask(pipeline, events, "set the desk lamp to 40 percent")
        reply, calls, _ = await _ask(pipeline, events, "a bit brighter")
        assert calls[0][0] == "home_set_light" and calls[0][1]["brightness"] == 65
    finally:
        await controller.close()


async def test_an_llm_follow_up_sees_the_history(config):
    cfg = _cfg(config)
    bus = EventBus()
    reg = await ToolRegistry.create(cfg, bus)
    llm = ScriptedLLM([
        {"tool": "home_turn_on", "arguments": {"name": "Bedroom Fan"}},
        {"tool": "done", "arguments": {}},
        {"tool": "home_turn_off", "arguments": {"name": "Bedroom Fan"}},
        {"tool": "done", "arguments": {}},
    ])
    local = LocalController(llm, reg, bus, cfg.llm)
    conv = Conversation(max_turns=cfg.llm.history_turns)
    _ = [p async for p in local.respond("it's stuffy up here, put the bedroom fan on", turn=1, conversation=conv)]
    _ = [p async for p in local.respond("ok that's enough, the bedroom fan can go off", turn=2, conversation=conv)]
    assert "put the bedroom fan on" in llm.prompts[2] and '"home_turn_on"' in llm.prompts[2]
    await reg.close()


def test_history_is_bounded_and_summarised():
    conv = Conversation(max_turns=2, max_summary=3)
    for i in range(6):
        conv.add_tool_call("timer_start", {"minutes": i}, {"ok": True})
        conv.add(f"timer {i}", f"Timer set for {i} minutes.")
    assert len(conv.recent) == 2 and len(conv.summary) == 3
    msgs = conv.messages()
    assert msgs[0]["role"] == "system" and "timer_start(minutes=3) -> ok" in msgs[0]["content"]
    assert "minutes=0" not in json.dumps(msgs)  # the oldest fell off the summary


# ---------------------------------------------------------------------------- remote tiers


@pytest.fixture(scope="module")
def openai_server(tmp_path_factory):
    need_test_models()
    with llama_server(GGUF, tmp_path_factory.mktemp("llama")) as url:
        yield url


def _remote_cfg(config: Config, endpoints: list[dict], policy: str = "allowed", **extra) -> Config:
    return _cfg(config, **{"remote.policy": policy, "remote.endpoints": endpoints, "remote.breaker_failures": 1, **extra})


async def test_local_only_policy_never_calls_out(config, openai_server):
    proxy = RecordingProxy(openai_server)
    try:
        cfg = _remote_cfg(config, [{"name": "lan", "base_url": proxy.url, "model": "m", "privacy": "lan"}], policy="never")
        bus = EventBus()
        events = bus.record()
        controller = await build_controller(cfg, bus)
        pipeline = Pipeline(cfg, None, responder=controller.router, bus=bus)
        for text in ("can I have a medium double shot americano", "ask the cloud who wrote hamlet", "turn on the living room lamp"):
            await _ask(pipeline, events, text)
        await controller.close()
        assert proxy.received == []
        assert not [e for e in events if isinstance(e, RemoteCall)]
        assert not (cfg.paths.resolved_data_dir() / "remote_audit.jsonl").exists()
    finally:
        proxy.close()


async def test_remote_request_is_minimised_and_redacted(config, openai_server):
    proxy = RecordingProxy(openai_server)
    try:
        cfg = _remote_cfg(
            config, [{"name": "cloud", "base_url": proxy.url, "model": "smollm2", "privacy": "cloud", "timeout_s": 60}],
            **{"remote.private_terms": ["Alice Smith", "Alice"]},
        )
        bus = EventBus()
        events = bus.record()
        controller = await build_controller(cfg, bus)
        pipeline = Pipeline(cfg, None, responder=controller.router, bus=bus)
        await _ask(pipeline, events, "turn on the living room lamp")  # local: must not leave the device
        text = ("ask the cloud: write one friendly sentence for Alice Smith (alice@example.com, +44 20 7946 0958) "
                "who lives at 42 Baker Street, about the living room lamp")
        reply, calls, routes = await _ask(pipeline, events, text)
        await controller.close()
        assert len(proxy.received) >= 1
        sent = json.dumps(proxy.received[0])
        for secret in ("Alice", "alice@example.com", "7946", "42 Baker Street", "Living Room Lamp", "living room lamp", "light.living_room_lamp"):
            assert secret not in sent, secret
        user = [m for m in proxy.received[0]["messages"] if m["role"] == "user"]
        assert len(user) == 1 and "<PERSON_1>" in user[0]["content"] and "<EMAIL_1>" in user[0]["content"]
        assert "<ADDRESS_1>" in user[0]["content"] and "<DEVICE_1>" in user[0]["content"]
        assert "turn on the living room lamp" not in sent  # no history, only this request
        assert len(proxy.received[0].get("tools", [])) <= cfg.remote.max_tools
        assert routes[-1][0] == "remote" and reply
        assert "<PERSON_1>" not in reply and "<DEVICE_1>" not in reply  # mapped back on the device
        audit = [json.loads(l) for l in (cfg.paths.resolved_data_dir() / "remote_audit.jsonl").read_text().splitlines()]
        assert audit[-1]["endpoint"] == "cloud" and audit[-1]["ok"] and audit[-1]["sent"] == proxy.received[-1]
        assert audit[-1]["prompt_tokens"] > 0
    finally:
        proxy.close()


async def test_remote_endpoints_down_slow_or_failing(config, openai_server):
    slow = RecordingProxy(openai_server, mode="slow", delay_s=3.0)
    failing = RecordingProxy(openai_server, mode="error")
    good = RecordingProxy(openai_server)
    down = f"http://127.0.0.1:{free_port()}/v1"
    try:
        endpoints = [
            {"name": "down", "base_url": down, "model": "m", "privacy": "lan", "retries": 1, "timeout_s": 1},
            {"name": "slow", "base_url": slow.url, "model": "m", "privacy": "lan", "retries": 0, "timeout_s": 1},
            {"name": "failing", "base_url": failing.url, "model": "m", "privacy": "lan", "retries": 2, "timeout_s": 5},
        ]
        cfg = _remote_cfg(config, endpoints, **{"llm.enabled": False, "remote.breaker_cooldown_s": 300})
        bus = EventBus()
        events = bus.record()
        controller = await build_controller(cfg, bus)
        pipeline = Pipeline(cfg, None, responder=controller.router, bus=bus)
        reply, _, routes = await _ask(pipeline, events, "who wrote hamlet")
        assert reply == "Sorry, I can't answer that on my own, and I can't reach the bigger model right now."
        assert len(failing.received) == 3  # retried twice with backoff
        assert len(slow.received) == 1
        # the breakers are open now: the next request does not wait for dead servers
        n_failing = len(failing.received)
        reply, _, routes = await _ask(pipeline, events, "who painted the mona lisa")
        assert len(failing.received) == n_failing
        assert routes[-1][0] == "none" and "every remote endpoint is failing" in routes[-1][1]
        # local commands keep working
        reply, calls, _ = await _ask(pipeline, events, "turn on the living room lamp")
        assert reply == "Turned on the living room lamp."
        await controller.close()

        cfg2 = _remote_cfg(config, [endpoints[0], {"name": "good", "base_url": good.url, "model": "m", "privacy": "lan", "timeout_s": 60}],
                           **{"llm.enabled": False})
        controller = await build_controller(cfg2, bus)
        pipeline = Pipeline(cfg2, None, responder=controller.router, bus=bus)
        reply, _, routes = await _ask(pipeline, events, "who wrote hamlet")
        assert routes[-1] == ("remote", "the user asked for the remote model; asking good (lan)") or routes[-1][0] == "remote"
        assert reply and len(good.received) == 1
        await controller.close()
    finally:
        for p in (slow, failing, good):
            p.close()


async def test_ask_first_policy_respects_a_no(config, openai_server):
    proxy = RecordingProxy(openai_server)
    try:
        cfg = _remote_cfg(config, [{"name": "cloud", "base_url": proxy.url, "model": "m"}], policy="ask", **{"llm.enabled": False})
        asked = []

        async def no(req):
            asked.append(req.prompt)
            return False

        bus = EventBus()
        controller = await build_controller(cfg, bus, confirm=no)
        pipeline = Pipeline(cfg, None, responder=controller.router, bus=bus)
        reply = await pipeline.handle_text("who wrote hamlet", speak=False)
        await controller.close()
        assert proxy.received == []
        assert asked and "leave this device" in asked[0]
        assert reply.startswith("OK, I'll keep that on the device.")
    finally:
        proxy.close()


def test_redactor_round_trip():
    r = Redactor(devices=["Living Room Lamp"], areas=["Living Room"], entity_ids=["light.living_room_lamp"], people=["Alice Smith"])
    text = "Tell Alice Smith (alice@example.com, +1 415 555 0100) the Living Room Lamp is on; GPS 51.5237, -0.1585; 123456 stays."
    red = r.redact(text)
    for secret in ("Alice", "alice@", "555", "Living Room", "51.5237"):
        assert secret not in red
    assert "123456 stays" in red
    assert r.restore(red) == text
    assert r.restore({"name": "<DEVICE_1>"}) == {"name": "Living Room Lamp"}


async def test_a_tool_can_ask_the_remote_model_under_the_policy(config, openai_server):
    proxy = RecordingProxy(openai_server)
    try:
        cfg = _remote_cfg(config, [{"name": "cloud", "base_url": proxy.url, "model": "m", "privacy": "cloud", "timeout_s": 60}],
                          **{"llm.enabled": False, "remote.private_terms": ["Alice"]})
        controller = await build_controller(cfg, EventBus())
        remote = controller.registry.service("remote")
        text = await remote.complete("Write one line wishing Alice a happy birthday.", reason="a birthday card tool")
        await controller.close()
        assert text and "<PERSON_1>" not in text
        assert "Alice" not in json.dumps(proxy.received[-1]) and "tools" not in proxy.received[-1]
        never = _remote_cfg(config, [{"name": "cloud", "base_url": proxy.url, "model": "m"}], policy="never", **{"llm.enabled": False})
        controller = await build_controller(never, EventBus())
        n = len(proxy.received)
        assert await controller.registry.service("remote").complete("hello", reason="test") == ""
        await controller.close()
        assert len(proxy.received) == n
    finally:
        proxy.close()


async def test_the_llm_loads_in_the_background_and_only_a_request_that_needs_it_waits(config):
    """``assistant ask`` and the session start before the LLM's ~10 s prompt warm-up: a template
    request is answered while it loads; a request for the LLM says it waits, then gets the LLM."""
    from assistant.controller.router import LOADING_NOTICE

    need_test_models()
    bus = EventBus()
    routes = bus.record()
    controller = await build_controller(_cfg(config, **{"llm.enabled": True}), bus, background_llm=True)
    try:
        router = controller.router
        assert router.local is None and router.local_loading is not None
        reply = "".join([p async for p in router.respond("turn on the living room lamp", turn=1)])
        assert reply == "Turned on the living room lamp."
        assert not router.local_loading.done(), "the template request should not have waited for the warm-up"
        reply = "".join([p async for p in router.respond("tell me a story about a dragon", turn=2)])
        assert reply.startswith(LOADING_NOTICE) and len(reply) > len(LOADING_NOTICE)
        assert router.local is not None and router.local_loading is None
        assert any(isinstance(e, RouteDecided) and e.route == "local_llm" and e.turn == 2 for e in routes)
    finally:
        await controller.close()


async def test_closing_while_the_llm_warms_up_stops_the_warm_up(config):
    need_test_models()
    controller = await build_controller(_cfg(config, **{"llm.enabled": True}), EventBus(), background_llm=True)
    task = controller.router.local_loading
    await controller.close()
    assert task.done()
    local = task.result()
    prefix = local.engine.count_tokens(local.engine.render(local.prefix_messages(), generation_prompt=False))
    assert local.engine.llm.n_tokens < prefix  # it stopped part-way instead of evaluating the whole prefix
