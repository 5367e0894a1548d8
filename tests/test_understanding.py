"""Understanding home requests the way people say them: entity resolution, the tolerant tier, asking back.

The accuracy tests run the development set and the held-aside split of ``tests/data/nlu`` through
the router (templates → tolerant tier; the LLM off, then on), the way the benchmark does; the
figures are printed (``-s``) and the thresholds are the ones the product promises.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.audio import SAMPLE_RATE, write_wav
from assistant.config import save_config
from assistant.controller.clarify import choose
from assistant.home import EntityResolver, load_home_yaml, normalize
from benchmarks.nlu import HOMES, evaluate, load_cases, summarize

from .conftest import need_test_models, recording


@pytest.fixture(scope="module")
def family() -> EntityResolver:
    return EntityResolver(load_home_yaml(HOMES / "family_house.yaml"), "Living Room")


@pytest.fixture(scope="module")
def lamps() -> EntityResolver:
    return EntityResolver(load_home_yaml(HOMES / "two_lamps.yaml"), "Living Room")


def _ids(res) -> list[str]:
    return sorted(e.id for e in res.entities)


# ---------------------------------------------------------------------------- the resolver


def test_names_numbers_as_words_and_possessives_compare_equal():
    assert normalize("Bedroom One's ceiling light!") == "bedroom 1 ceiling light"
    assert normalize("Trader Joe's") == normalize("trader joes") or normalize("Trader Joe's") == "trader joe"
    assert normalize("set it to twenty five percent") == "set it to 25 percent"
    assert normalize("it's too dark") == "it is too dark"


@pytest.mark.parametrize("said, expected", [
    ("the bedroom 2 heater", ["switch.bedroom_2_heater"]),          # area + a name inside it
    ("heater in bedroom two", ["switch.bedroom_2_heater"]),
    ("the office smart blind", ["cover.office_blind"]),
    ("back garden valve", ["valve.back_garden"]),                  # area + kind
    ("the entry door", ["lock.entry"]),                            # area + what a lock is called
    ("garage door opener", ["cover.garage_door"]),
    ("robbie", ["vacuum.robot"]),                                  # alias
    ("living room liam", ["light.living_room_lamp"]),              # the recogniser's slip
    ("dibrigation valve", ["valve.front_yard_irrigation"]),
    ("kitchen lights", ["light.kitchen_ceiling", "light.kitchen_island"]),  # plural: all of them
])
def test_resolves_names_people_use(family, said, expected):
    res = family.resolve(name=said, verb="turn_on")
    assert res.ok, res.message
    assert _ids(res) == expected


def test_kind_alone_prefers_the_speakers_area(family):
    res = family.resolve(name="the fan", verb="turn_off")  # two fans; one in the living room
    assert _ids(res) == ["fan.living_room_ceiling"]
    res = family.resolve(name="the curtains", verb="turn_off")
    assert _ids(res) == ["cover.living_room_curtains"]


def test_two_that_fit_equally_are_asked_about(lamps):
    res = lamps.resolve(name="the lamp", verb="turn_on")
    assert res.reason == "ambiguous"
    assert sorted(e.id for e in res.candidates) == ["light.floor_lamp", "light.reading_lamp"]
    assert res.message == "Which one: the reading lamp or the floor lamp?"
    # the same name in three rooms: the question says where
    res = lamps.resolve(name="ceiling light", verb="turn_on")
    assert res.reason == "ambiguous" and "in the kitchen" in res.message
    # unless only one of them would change
    lamps.snap.entities = [e.with_state("on") if e.id == "light.kitchen_ceiling" else e for e in lamps.snap.entities]
    try:
        res = lamps.resolve(name="the ceiling light", verb="turn_on")  # bedroom 2's is on too: only bedroom 1's is off
        assert res.ok and _ids(res) == ["light.bedroom_1_ceiling"]
    finally:
        lamps.snap.entities = load_home_yaml(HOMES / "two_lamps.yaml").entities


def test_a_device_the_home_lacks_is_an_error_not_a_guess(family, lamps):
    res = family.resolve(name="the jacuzzi", verb="turn_on")
    assert res.reason == "no_name" and res.message == "I couldn't find the jacuzzi."
    res = lamps.resolve(name="lamp", area="Kitchen", verb="turn_on")
    assert res.reason == "no_name" and not res.entities


@pytest.mark.parametrize("answer, index", [
    ("the floor lamp", 1), ("floor", 1), ("the reading one", 0), ("the first one", 0), ("the second", 1), ("reading lamp please", 0),
    # Whisper's slips on a Piper "The floor lamp." (20 syntheses: 13 right, these among the rest)
    ("the floor of land.", 1), ("the four lamp.", 1), ("the flaw lamp", 1), ("the reeding lamp", 0),
    ("the lamp", None), ("the garage", None),
])
def test_answers_to_which_one(answer, index):
    assert choose(answer, ["the reading lamp", "the floor lamp"], ["light.reading_lamp", "light.floor_lamp"]) == index


def test_answers_that_pick_by_room():
    labels = ["the ceiling light in the kitchen", "the ceiling light in the bedroom 1", "the ceiling light in the bedroom 2"]
    assert choose("the kitchen", labels) == 0
    assert choose("bedroom two", labels) == 2
    assert choose("bedroom one", labels) == 1 and choose("the kitchen one", labels) == 0
    assert choose("the garage", labels) is None
    assert choose("Lucky each one.", labels) is None  # Whisper's garble of "the kitchen": "one" is no bedroom 1
    assert choose("The best one.", ["the bedroom lamp", "the desk lamp"]) is None  # "best" is too short to read fuzzily


def test_recogniser_slips_of_a_state_question_and_of_add_are_understood():
    """Whisper hears "is the garage door open" as "It's the garage door open." (which opened the
    garage door), "add" as "and", "put" as "but", "locked" as "lock" and "dock" as "dot" or "doc"
    next to a vacuum: a statement of a device's
    state is answered as the question it was, and "and X to <a list of this home>" (or "but X on
    …") adds X."""
    from benchmarks.nlu import HomeRunner

    async def go():
        runner = HomeRunner("family_house.yaml", "Living Room")
        await runner.start()
        try:
            runner.reset({})
            before = {e.id: (e.state, e.attributes) for e in runner.home.snapshot().entities}
            reply, route = await runner.say("It's the garage door open.")
            after = {e.id: (e.state, e.attributes) for e in runner.home.snapshot().entities}
            assert after == before, "a question changed the home"
            assert route == "tolerant" and reply.startswith("No") and "closed" in reply
            reply, _ = await runner.say("is the entry door lock.")  # "locked": its "-ed" fell silent
            assert reply.startswith("Yes") and "locked" in reply, reply
            reply, _ = await runner.say("is the robot vacuum dot.")  # "docked": "dock" heard as "dot"
            assert reply.startswith("Yes") and "docked" in reply, reply
            assert runner.home.calls == []
            runner.reset({"vacuum.robot": "cleaning"})
            reply, _ = await runner.say("Doc the robot vacuum.")
            assert runner.home.calls == [("vacuum.robot", "return_to_base", {})], reply
            runner.reset({})  # a new conversation: right after a question "and …" continues it
            reply, _ = await runner.say("and mow the lawn to chores.")
            chores = runner.states()["todo.chores"]
            assert "mow the lawn" in [i["summary"].lower() for i in chores.attributes["items"]], reply
            runner.reset({})
            await runner.say("But fix the fence on my chores.")  # "put …": Whisper's slip
            chores = runner.states()["todo.chores"]
            assert "fix the fence" in [i["summary"].lower() for i in chores.attributes["items"]]
            runner.reset({})
            await runner.say("and the lamp to 50")  # no list called "50": not a list item
            assert runner.home.calls == [("light.living_room_lamp", "turn_on", {"brightness_pct": 50})]
        finally:
            await runner.close()

    asyncio.run(go())


@pytest.mark.parametrize("home, area, heard", [
    ("@fixtures/ha-intents-tests-en/_fixtures.yaml", "", "This is the home."),  # Whisper for "is Ada home": sent the vacuum to its dock
    ("named_like_areas.yaml", "Living Room", "Set the heating to kill."),  # "to cool": turned the heating off
    ("family_house.yaml", "Living Room", "It's believing room lamp on"),  # "is the living room lamp on": turned it on
    ("named_like_areas.yaml", "Living Room", "No sorry, light on at 10%."),  # "nursery light on at 10%": the room's light
    ("two_lamps.yaml", "Living Room", "Hold it on."),  # "hall light on": paused the TV
])
def test_misheard_sentences_that_are_no_command_change_nothing(home, area, heard):
    """Whisper's slips seen in the spoken development set that were acted on: a bare "home" is not
    "go home", "kill" is a verb only in front, "it's <a device> on" is the question "is … on", "hold
    … on" is no pause, and
    a last clause that names only a kind of device is not taken alone when the whole sentence
    named a device the home lacks."""
    from benchmarks.nlu import HomeRunner

    async def go():
        runner = HomeRunner(home, area)
        await runner.start()
        try:
            runner.reset({})
            before = {e.id: (e.state, e.attributes) for e in runner.home.snapshot().entities}
            reply, _route = await runner.say(heard)
            after = {e.id: (e.state, e.attributes) for e in runner.home.snapshot().entities}
            assert after == before, f"{heard!r} changed the home: {reply!r}"
            assert not runner.home.calls, runner.home.calls
            return reply
        finally:
            await runner.close()

    reply = asyncio.run(go())
    if heard.startswith("It's"):
        assert reply.startswith("No") and "off" in reply, reply  # answered as the question



def test_a_repaired_slip_means_what_the_same_words_typed_mean():
    """"basement light song." (Whisper's "basement lights on") read as "basement light on" goes to
    the exact templates, which turn on every light in the basement as they do for the typed words;
    the tolerant tier alone would have asked which of the two lights. A request without a slip is
    not given a second reading."""
    from benchmarks.nlu import HomeRunner

    async def go():
        runner = HomeRunner("three_floors.yaml", "Kitchen")
        await runner.start()
        try:
            tolerant = runner.controller.router.tolerant
            assert tolerant.repaired("basement light song.") == "basement light on"
            assert tolerant.repaired("Could you turn the basement lights on please?") is None  # politeness is no slip
            results = []
            for text in ("basement light on.", "basement light song."):
                runner.reset({})
                reply, route = await runner.say(text)
                results.append((route, sorted(runner.home.calls)))
            assert results[0] == results[1] == ("fast_path", [("light.den_recessed", "turn_on", {}), ("light.gym", "turn_on", {})]), results
        finally:
            await runner.close()

    asyncio.run(go())


def test_slips_that_only_seem_understood_are_worth_hearing_again():
    """A question about a device the home lacks ("is the courage door open", Whisper's slip for
    "garage door") is not understood below the LLM, so it is heard again, while the real question
    is understood; words Whisper ran together ("Lampon.") may be a home request too; a question
    for the LLM is neither."""
    from benchmarks.nlu import HomeRunner

    from assistant.controller.rescore import TranscriptRescorer

    async def go():
        runner = HomeRunner("named_like_areas.yaml", "")
        await runner.start()
        try:
            rescorer = TranscriptRescorer(runner.controller.router)
            assert rescorer.understands("is the garage door open")
            assert not rescorer.understands("is the courage door open.") and rescorer.worth_hearing_again("is the courage door open.")
            assert rescorer.understands("is anything open")  # no name: nothing to find
            assert rescorer.worth_hearing_again("Lampon.") and rescorer.worth_hearing_again("Best Lampoff.")
            assert not rescorer.worth_hearing_again("What is the capital of France?")
            words = rescorer.vocabulary()
            assert {"nursery", "garage", "open", "turn", "please"} <= words and "courage" not in words
        finally:
            await runner.close()

    asyncio.run(go())


def test_recogniser_slips_of_a_commands_verb_are_understood():
    """Whisper's slips on espeak-ng and Piper requests of the development set: a verb one letter
    off ("Nute", "Refume", "Unute"), "the TV" as "30V", "lights on" as "light song", "unlock" and
    "unmute" as "and lock", "and mute". A word one
    edit from two verbs, or one of the home's names, is not changed."""
    from benchmarks.nlu import HomeRunner

    from assistant.controller.tolerant import opening_slip

    assert opening_slip("nute the tv") == "mute the tv" and opening_slip("refume") == "resume"
    assert opening_slip("deck lights on", frozenset({"deck"})) == "deck lights on"  # a name of the home
    assert opening_slip("what is the time") == "what is the time"  # a word of the grammar
    assert opening_slip("tock it") == "tock it"  # "lock" or "dock": left to the tiers above
    assert opening_slip("dot the vacuum") == "dot the vacuum"  # too short to tell

    async def go():
        runner = HomeRunner("@fixtures/ha-intents-tests-en/_fixtures.yaml", "")
        await runner.start()
        try:
            for heard, call in [("Nute 30V.", ("media_player.tv", "volume_mute", {"is_volume_muted": True})),
                                ("Refume 30v.", ("media_player.tv", "media_play", {})),
                                ("Light song in the garage.", ("light.garage", "turn_on", {})),
                                # "un-" heard as "and" (unlocking is confirmed: the runner says yes)
                                ("And lock the front door.", ("lock.front_door", "unlock", {})),
                                ("and mute 30V.", ("media_player.tv", "volume_mute", {"is_volume_muted": False}))]:
                runner.reset({})
                reply, route = await runner.say(heard)
                assert route in ("tolerant", "fast_path") and runner.home.calls == [call], (heard, reply)  # the repaired reading may match a template
        finally:
            await runner.close()

    asyncio.run(go())


def test_recogniser_slips_of_lock_all_and_upstairs_are_understood():
    """More of Whisper's slips on the development set's espeak-ng and Piper requests: "lock" as
    "walk" before what only a lock does, "all" as "oil", "upstairs" as "up its tears", "unmute" as
    "A mute."/"I mute.", "the" as "their", "to" for the 2 inside "Bedroom 2 Ceiling Light". "walk
    the dog" stays no request; a floor called "Upstairs" is said without "on the"."""
    from benchmarks.nlu import HomeRunner

    async def go():
        runner = HomeRunner("two_lamps.yaml", "Living Room")
        await runner.start()
        try:
            locks = [("lock.back_door", "lock", {}), ("lock.front_door", "lock", {})]
            for heard in ("walk all the doors.", "Walk up everything.", "Lock oil, their doors."):
                runner.reset({"lock.front_door": "unlocked", "lock.back_door": "unlocked"})
                reply, _ = await runner.say(heard)
                assert sorted(runner.home.calls) == locks, (heard, reply)
            for heard in ("A mute.", "I mute."):
                runner.reset({"media_player.living_room_tv": {"state": "on", "is_volume_muted": True}})
                reply, _ = await runner.say(heard)
                assert runner.home.calls == [("media_player.living_room_tv", "volume_mute", {"is_volume_muted": False})], (heard, reply)
            runner.reset({"light.bedroom_lamp": "on"})
            reply, _ = await runner.say("Turn off oil that lights up its tears.")
            states = runner.states()
            assert states["light.bedroom_lamp"].state == "off" and states["light.bedroom_2_ceiling"].state == "off", reply
            assert {service for _eid, service, _data in runner.home.calls} == {"turn_off"}
            assert not {eid for eid, _s, _d in runner.home.calls} & {"light.hall", "light.living_room_spots", "light.kitchen_ceiling"}  # downstairs
            for heard in ("Bedroom to ceiling light on.", "turn on the bedroom too ceiling light"):  # "Bedroom 2 …": a digit inside a name
                runner.reset({"light.bedroom_2_ceiling": "off"})
                reply, _ = await runner.say(heard)
                assert runner.home.calls == [("light.bedroom_2_ceiling", "turn_on", {})], (heard, reply)
            runner.reset({"light.bedroom_lamp": "on"})
            reply, _ = await runner.say("set the bedroom lamp to 20%")
            assert runner.home.calls == [("light.bedroom_lamp", "turn_on", {"brightness_pct": 20})], reply
            runner.reset({})
            reply, _ = await runner.say("walk the dog")
            assert runner.home.calls == [], reply
            reply, _ = await runner.say("shot the shades up its tears.")
            assert reply == "There are no shades upstairs.", reply
        finally:
            await runner.close()

    asyncio.run(go())


def test_turning_lights_off_sets_no_brightness_from_a_stray_number():
    """ "Turn off the lights on the 2nd 4." (Piper's "… on the second floor", heard by Whisper) had
    turned the second floor's lights *on* at 4 %: an "off" request is never a brightness."""
    from benchmarks.nlu import HomeRunner

    async def go():
        runner = HomeRunner("three_floors.yaml", "Kitchen")
        await runner.start()
        try:
            runner.reset({})
            await runner.say("Turn off the lights on the 2nd 4.")
            assert runner.home.calls and all(service == "turn_off" for _eid, service, _data in runner.home.calls), runner.home.calls
            assert runner.states()["light.kids_room"].state == "off"
        finally:
            await runner.close()

    asyncio.run(go())


def test_a_recognition_within_the_homes_words_may_only_repair_what_was_heard():
    """The grammar pass's candidates seen acting wrongly: one that adds words ("After slight on." →
    "I have to just light on.", the room's light), one that swaps a name heard right for
    another ("upstairs" → "downstairs") and one that names no target are not repairs; a misheard
    word put right is."""
    from benchmarks.nlu import HomeRunner

    from assistant.controller.rescore import TranscriptRescorer

    async def go():
        runner = HomeRunner("three_floors.yaml", "Kitchen")
        await runner.start()
        try:
            rescorer = TranscriptRescorer(runner.controller.router)
            assert not rescorer.repairs("Start to be upstairs, vacuum.", "Start the downstairs vacuum.")
            assert rescorer.repairs("Start to be upstairs, vacuum.", "Start the upstairs vacuum.")
            assert not rescorer.repairs("After slight on.", "I have to just light on.")
            assert rescorer.repairs("Turn on the gym, fam.", "Turn on the gym fan.")
            assert rescorer.repairs("Lampon.", "Lamp on.")  # one word written as two
            assert not rescorer.repairs("Turn off an attack lead.", "Turn off and rotate it.")  # no target: the room's fan
            assert rescorer.repairs("shut off a little water.", "shut off the water.")  # a kind of device
        finally:
            await runner.close()

    asyncio.run(go())


def test_all_with_a_singular_noun_is_a_misheard_name(lamps):
    """ "all light on" is Whisper's "hall light on" (the one device whose name is that close); "all
    lights" and "all the lights" still mean every light."""
    res = lamps.resolve(name="all light", verb="turn_on")
    assert _ids(res) == ["light.hall"]
    assert len(lamps.resolve(name="all lights", verb="turn_on").entities) > 1
    assert len(lamps.resolve(name="all the lights", verb="turn_on").entities) > 1


def test_a_name_that_is_only_an_article_says_what_was_not_found(family):
    res = family.resolve(name="the", verb="turn_on")
    assert res.reason == "no_name" and res.message == "I couldn't find that device."


# ---------------------------------------------------------------------------- the development set and the held-aside split


def _run(cases, **kw):
    return summarize(asyncio.run(evaluate(cases, **kw)))


def _report(name: str, s: dict) -> None:
    print(f"\n{name}: {s['ok']}/{s['n']} = {s['accuracy']:.1%} exactly the expected changes; false actions {s['false_actions']} "
          f"({s['false_action_rate']:.1%}); time per request p50 {s['ms']['p50']} ms, p95 {s['ms']['p95']} ms; "
          "by tier " + ", ".join(f"{k} {v['ok']}/{v['n']}" for k, v in s["by_route"].items()))
    for f in s["failures"]:
        print(f"  miss {f['id']} [{f['route']}] {f['say']!r}: {f['why']}")


def test_held_aside_split_typed_without_the_llm():
    cases = load_cases(("heldout",))
    assert len(cases) >= 100
    s = _run(cases)
    _report("held-aside split, typed, LLM off", s)
    assert s["accuracy"] >= 0.90
    assert s["false_action_rate"] <= 0.01


def test_development_set_typed_without_the_llm():
    cases = load_cases(("dev",))
    assert len(cases) >= 300
    s = _run(cases)
    _report("development set, typed, LLM off", s)
    assert s["accuracy"] >= 0.95
    assert s["false_action_rate"] <= 0.01


@pytest.mark.slow
def test_held_aside_split_does_not_drop_with_the_local_llm(config):
    need_test_models()
    cases = load_cases(("heldout",))
    off = _run(cases)
    on = _run(cases, llm=True, config_overrides={"paths.models_dir": str(config.paths.models_dir), "llm.model": "smollm2-135m-instruct", "llm.threads": 2})
    _report("held-aside split, typed, SmolLM2 on", on)
    assert on["ok"] >= off["ok"]
    assert on["false_actions"] <= off["false_actions"]


# ---------------------------------------------------------------------------- asking which one, end to end


def _two_lamps_config(config, tmp_path: Path) -> Path:
    cfg = config.with_overrides({"home.simulated_home": str(HOMES / "two_lamps.yaml"), "home.area": "Living Room", "llm.enabled": False})
    path = tmp_path / "config.toml"
    save_config(cfg, path)
    return path


def _state(config, tmp_path: Path, entity: str) -> str:
    data = json.loads((tmp_path / "data" / "plugins" / "home" / "simulated_state.json").read_text())
    return data["entities"][entity]["state"]


def test_assistant_ask_asks_which_one_and_the_typed_answer_completes_it(config, tmp_path):
    cfg = _two_lamps_config(config, tmp_path)
    r = subprocess.run([sys.executable, "-m", "assistant", "--config", str(cfg), "ask", "turn on the lamp"],
                       input="the floor lamp\n", capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert r.returncode == 0, r.stderr
    assert "asked:  Which one: the reading lamp or the floor lamp?" in r.stdout
    assert "Turned on the floor lamp." in r.stdout
    assert _state(config, tmp_path, "light.floor_lamp") == "on"
    assert _state(config, tmp_path, "light.reading_lamp") == "off"


@pytest.mark.slow
def test_assistant_run_asks_which_one_and_the_spoken_answer_completes_it(config, tmp_path, tts):
    from assistant.audio import resample

    def say(text: str):
        audio, _ = tts.synthesize_all(text)
        return resample(audio, tts.sample_rate, SAMPLE_RATE)

    cfg = _two_lamps_config(config, tmp_path)
    rec = tmp_path / "input.wav"
    write_wav(rec, recording(0.5, "hey_jarvis.wav", 0.3, say("Turn on the lamp."), 1.2, say("The floor lamp."), 1.5), SAMPLE_RATE)
    events = tmp_path / "events.jsonl"
    r = subprocess.run([sys.executable, "-m", "assistant", "--config", str(cfg), "run", "--input", str(rec), "--output", str(tmp_path / "out.wav"),
                        "--events", str(events), "--no-pull"], capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert r.returncode == 0, r.stderr
    evs = [json.loads(line) for line in events.read_text().splitlines()]
    replies = [e["text"] for e in evs if e["type"] == "reply"]
    assert any(t.startswith("Which one") for t in replies), replies
    heard = [(e["type"], e.get("text") or e.get("reason") or e.get("state") or "") for e in evs if e["type"] not in ("audio_level",)]
    assert _state(config, tmp_path, "light.floor_lamp") == "on", heard
    assert _state(config, tmp_path, "light.reading_lamp") == "off"


def test_a_dictated_item_whisper_was_unsure_of_is_asked_about_first():
    """A list item is written down as said: when the request was spoken and Whisper scored its
    transcript below ``tools.confirm_dictation_below``, the assistant asks "Add “…” to …?" first
    (a "no" adds nothing); words heard with confidence, and typed requests, are added at once.
    Other tools (no dictated argument) never ask for this."""
    from benchmarks.nlu import HomeRunner

    from assistant.engine.context import TurnContext, use

    asked: list[tuple[str, str]] = []

    async def user(request) -> bool:
        asked.append((request.reason, request.prompt))
        return False

    def spoken(score: float) -> TurnContext:
        async def heard() -> float:
            return score
        return TurnContext(heard=heard)

    async def go():
        runner = HomeRunner("family_house.yaml", "Living Room", confirm=user)
        await runner.start()
        try:
            items = lambda: [i["summary"] for i in runner.states()["todo.chores"].attributes.get("items") or []]  # noqa: E731
            runner.reset({})
            with use(spoken(-0.9)):
                reply, _ = await runner.say("add more the long to chores")
            assert asked == [("dictation", "Add “more the long” to the chores list?")], asked
            assert "more the long" not in items() and "won't" in reply
            with use(spoken(-0.2)):
                await runner.say("add mow the lawn to chores")
            assert "mow the lawn" in items() and len(asked) == 1
            await runner.say("add fix the fence to chores")  # typed: nothing to be unsure of
            assert "fix the fence" in items() and len(asked) == 1
            runner.reset({})
            with use(spoken(-0.9)):
                await runner.say("turn on the living room lamp")
            assert runner.home.calls == [("light.living_room_lamp", "turn_on", {})] and len(asked) == 1
        finally:
            await runner.close()

    asyncio.run(go())


def test_the_tolerant_tier_reads_colours_from_many_threads_at_once() -> None:
    """The colour pattern is built on first use; threads racing to that first use all see it.

    The voice loop's end-of-turn judge and the router ask the tolerant tier from different
    threads. A lazily built pair of globals once let a second thread read the pattern before the
    first had set it (``'NoneType' object has no attribute 'search'``, a CI failure of
    ``test_two_turns_from_a_recording``). A tiny switch interval makes that interleaving likely.
    """
    import threading

    from assistant.controller import tolerant

    errors: list[BaseException] = []
    colours: list[str | None] = []
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(5):
            tolerant._color_re.cache_clear()
            barrier = threading.Barrier(8)

            def read() -> None:
                barrier.wait()
                try:
                    colours.append(tolerant._values("turn the desk lamp dark blue")[0].color)
                except BaseException as e:  # noqa: BLE001 - collected and asserted below
                    errors.append(e)

            threads = [threading.Thread(target=read) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        sys.setswitchinterval(old)
    assert errors == []
    assert colours == ["darkblue"] * 40
