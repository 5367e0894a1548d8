"""The benchmark table (stdout) and plots (PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _g(d: dict, *keys, default="-"):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def table(r: dict[str, Any]) -> str:
    m = r.get("machine", {})
    rows: list[tuple[str, str]] = [("machine", f"{m.get('cpu', '?')}, {m.get('cores')} cores, {m.get('mem_gb')} GiB, Python {m.get('python')}"),
                                   ("models", ", ".join(f"{v}" for v in r.get("models", {}).values() if isinstance(v, str)))]
    for route, e in r.get("e2e", {}).items():
        rows.append((f"e2e {route}: end of utterance → first audio", f"p50 {_g(e, 'ours_ms', 'p50')} ms, p95 {_g(e, 'ours_ms', 'p95')} ms (n={_g(e, 'ours_ms', 'n')})"))
        rows.append((f"e2e {route}: sequential pipeline, same router", f"p50 {_g(e, 'naive_ms', 'p50')} ms → sequential/ours = {e.get('ratio_naive_over_ours_p50')}x"))
        st = e.get("stages_ms", {})
        parts = [f"{k} {v['p50']:.0f}" for k, v in st.items() if k not in ("first_audio",) and isinstance(v, dict) and "p50" in v]
        rows.append((f"e2e {route}: stages p50 ms", " · ".join(parts)))
    for route, e in r.get("turn", {}).items():
        if route in ("cutoffs", "method"):
            continue
        rows.append((f"turn {route}: last voiced frame → reply heard", f"p50 {_g(e, 'ours_ms', 'p50')} ms, p95 {_g(e, 'ours_ms', 'p95')} ms (n={_g(e, 'ours_ms', 'n')}); "
                     f"earcon in {_g(e, 'earcon_ms', 'n')} turns, p50 {_g(e, 'earcon_ms', 'p50')} ms; waited for the ceiling in {e.get('ceiling_waits', '-')}, ended at the unsure ceiling in {e.get('unsure_pause_ends', '-')}; "
                     f"first sentence synthesised ahead (tts.prefetch) in {e.get('first_words_synthesised_ahead', '-')}"))
        rows.append((f"turn {route}: sequential 700 ms baseline", f"p50 {_g(e, 'naive_ms', 'p50')} ms, p95 {_g(e, 'naive_ms', 'p95')} ms → baseline/ours = {e.get('ratio_naive_over_ours_p50')}x"))
        if e.get("ours_said_before_ms", {}).get("n"):
            rows.append((f"turn {route}: the same, reply said before (cached)", f"p50 {_g(e, 'ours_said_before_ms', 'p50')} ms, p95 {_g(e, 'ours_said_before_ms', 'p95')} ms (n={_g(e, 'ours_said_before_ms', 'n')})"))
        st = e.get("stages_ms", {})
        rows.append((f"turn {route}: stages p50 ms", " · ".join(f"{k} {v['p50']:.0f}" for k, v in st.items() if isinstance(v, dict) and "p50" in v)))
    for rule, c in r.get("turn", {}).get("cutoffs", {}).items():
        rows.append((f"turn cut off mid-sentence: {rule}", f"{c['cut_off']}/{c['turns']} = {c['rate']:.0%}" if c.get("rate") is not None else "-"))
        if c.get("rate_mid_request") is not None:
            rows.append((f"  … first part not a whole request: {rule}", f"{c['cut_off_mid_request']}/{c['turns_mid_request']} = {c['rate_mid_request']:.0%}"))
    soak = r.get("soak", {})
    if soak:
        rows.append(("soak: audio hours in wall seconds; commands acted on; typed answered",
                     f"{soak.get('audio_h')} h in {soak.get('wall_s')} s; {soak.get('commands_acted_on')}/{soak.get('commands')}; "
                     f"{soak.get('typed_answered')}/{soak.get('typed_sent')}"))
        rows.append(("soak: false requests from talk right after each command", f"{soak.get('false_requests')} "
                     f"({soak.get('false_requests_per_audio_hour')} per audio hour); with follow_up = \"always\": "
                     f"{soak.get('false_requests_follow_up_always', {}).get('false_requests')} after "
                     f"{soak.get('false_requests_follow_up_always', {}).get('commands')} commands"))
        rows.append(("soak: RSS and open files, after warm-up → end", f"{soak.get('rss_mb_after_warmup')} → {soak.get('rss_mb_end')} MB "
                     f"({soak.get('rss_growth_mb'):+} MB); {soak.get('fds_after_warmup')} → {soak.get('fds_end')} fds"))
    faults = r.get("faults", {})
    if faults:
        sm = faults.get("summary", {})
        rows.append(("fault matrix: survived / total (skipped)", f"{sm.get('survived')} / {sm.get('total')} ({sm.get('skipped')})"))
        for name, f in faults.items():
            if name != "summary":
                rows.append((f"  fault: {name}", f.get("skipped") or ("survived" if f.get("survived") else "FAILED ") + " — " + str(f.get("reply", ""))[:70]))
    mcp = r.get("mcp", {})
    if mcp:
        rows.append(("tool call p50 / p95: plugin · MCP stdio · MCP HTTP", " · ".join(
            f"{_g(mcp, k, 'p50')} / {_g(mcp, k, 'p95')} ms" for k in ("plugin_ms", "mcp_stdio_ms", "mcp_http_ms"))))
        rows.append(("MCP: start with one stdio server p50; crash → next good call", f"{_g(mcp, 'start_one_stdio_server_ms', 'p50')} ms; {mcp.get('crash_to_next_ok_call_ms')} ms"))
    for name, conds in r.get("vad", {}).items():
        rows.append((f"vad {name}: recall / false voice / end found p50 (never)",
                     " · ".join(f"{c}: {v['speech_recall']:.0%}/{v['false_voice']:.0%}/{v['end_found_ms_p50']} ms ({v['end_never']})" for c, v in conds.items())))
        rows.append((f"vad {name}: CPU ms per audio s", f"{next(iter(conds.values()))['cpu_ms_per_audio_s']}"))
    w = r.get("wake")
    if w:
        rows.append(("wake: detection rate", f"{w['detection_rate']:.0%} of {w['positive_clips']} positive clips"))
        rows.append(("wake: false activations", f"{w['false_activations']} in {w['negative_audio_minutes']} min of speech = {w['false_activations_per_hour']}/hour"))
        rows.append(("wake: CPU ms per audio second", " · ".join(f"{k} {v}" for k, v in w["cpu_ms_per_audio_s"].items())))
    a = r.get("asr")
    if a:
        rows.append((f"asr ({a['model']}, {a['threads']} threads)", f"RTF p50 {a['rtf_p50']}, WER {a['wer_overall']:.1%} over {len(a['clips'])} clips"))
        win = a.get("window")
        if win:
            rows.append((f"asr encoder window on {win['clips']} spoken requests: WER / exact / empty / compute p50, p95",
                         " · ".join(f"{k.removeprefix('window_')}: {v['wer']:.1%} / {v['exact']} / {v['empty']} / {v['compute_ms_p50']}, {v['compute_ms_p95']} ms"
                                    for k, v in win.items() if k.startswith("window_"))))
    ro = r.get("routing", {})
    if "fast_path" in ro:
        f = ro["fast_path"]
        rows.append(("fast path on HA intent tests", f"{f['routed_right']}/{f['served']} = {f['accuracy']:.1%}; match p50 {f['match_ms']['p50']} ms, p95 {f['match_ms']['p95']} ms"))
    if "local_llm" in ro:
        l = ro["local_llm"]
        rows.append((f"local LLM ({l['model']}) tool choice", f"{l['right_tool']}/{l['requests']} = {l['tool_choice_accuracy']:.0%}" if l["requests"] else "-"))
        rows.append(("local LLM time to first token", f"cached p50 {_g(l, 'ttft_cached_ms', 'p50')} ms vs cold p50 {_g(l, 'ttft_cold_ms', 'p50')} ms ({l['prefix_tokens']}-token prefix)"))
        rows.append(("local LLM generation", f"{_g(l, 'tokens_per_s', 'p50')} tokens/s"))
        j = l.get("jump_forward")
        if j and j.get("answered_both_ways"):
            rows.append(("local LLM: generation start → first word of the answer", f"one grammar p50 {j['one_grammar_ms_p50']} ms, jump-forward {j['jump_forward_ms_p50']} ms "
                         f"(paired saving p50 {j['saved_ms_p50']} ms; {j['answered_both_ways']} of {j['questions']} questions answered both ways, "
                         f"{j['rounds']} rounds; same tool {j['same_tool']}/{j['questions']})"))
            wc = j.get("whole_call_ms_p50")
            if wc:
                rows.append(("local LLM: generation start → whole call made", f"one grammar p50 {wc['one_grammar']} ms, jump-forward {wc['jump_forward']} ms, "
                             f"+ answer text without a grammar {wc['free_text']} ms (paired saving of the last p50 {j['free_text_saved_ms_p50']} ms; "
                             f"same call {j['free_text_same_call']}/{j['questions']})"))
    n = r.get("nlu", {})
    for key, label in (("typed_dev_llm_off", "natural requests, typed, dev set, LLM off"), ("typed_heldout_llm_off", "natural requests, typed, held-aside, LLM off"),
                       ("typed_heldout_llm_on", "natural requests, typed, held-aside, SmolLM2 on")):
        v = n.get(key)
        if v:
            tiers = ", ".join(f"{k} {x['ok']}/{x['n']}" for k, x in v["by_route"].items())
            rows.append((label, f"{v['ok']}/{v['n']} = {v['accuracy']:.1%}; false actions {v['false_actions']} ({v['false_action_rate']:.1%}); "
                                f"p50 {v['ms']['p50']} ms, p95 {v['ms']['p95']} ms; {tiers}"))
    v = n.get("voiced_heldout")
    if v:
        rows.append(("natural requests, spoken, held-aside", f"{v['ok']}/{v['n']} = {v['accuracy']:.1%}; false actions {v['false_actions']}; "
                                                           f"transcripts with invented names {v['transcripts_with_invented_names']}"))
        for cond, x in v["by_condition"].items():
            rows.append((f"  spoken: {cond}", f"{x['ok']}/{x['n']} = {x['accuracy']:.1%}"))
    t = r.get("tts")
    if t:
        rows.append(("tts time to first audio", " · ".join(f"{k} {v['first_audio_ms']['p50']} ms" for k, v in t.items())))
        rows.append(("tts real-time factor", " · ".join(f"{k} {v['rtf_p50']}" for k, v in t.items())))
    for name, v in r.get("service", {}).items():
        rows.append((f"service CPU, {name}", f"{v['cpu_percent_of_one_core']}% of one core; RSS {v['rss_mb']} MB (peak {v['peak_rss_mb']}), {v['turns']} turns"))
    mem = r.get("memory")
    if mem:
        rows.append(("peak RSS of `assistant run`", f"{mem['peak_rss_mb']} MB (exit {mem['exit_code']}, {mem['wall_s']} s)"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def plot(r: dict[str, Any], out: Path) -> list[Path]:
    """Distributions as PNG files; returns their paths (none if matplotlib is missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    paths = []
    e2e = r.get("e2e", {})
    if e2e:
        fig, ax = plt.subplots(figsize=(7, 4))
        data, labels = [], []
        for route, e in e2e.items():
            for kind in ("ours", "naive"):
                if e["raw"][kind]:
                    data.append(e["raw"][kind])
                    labels.append(f"{route}\n{kind}")
        ax.boxplot(data, tick_labels=labels)
        ax.set_ylabel("end of utterance → first reply audio (ms)")
        ax.set_title("End-to-end latency: this pipeline vs a naive sequential one")
        fig.tight_layout()
        p = out / "e2e_latency.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)
    fp = r.get("routing", {}).get("fast_path")
    if fp:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.hist(fp["raw_ms"], bins=50)
        ax.set_xlabel("fast-path match time (ms)")
        ax.set_ylabel("sentences")
        ax.set_title(f"Home Assistant intent tests: {fp['accuracy']:.1%} routed right")
        fig.tight_layout()
        p = out / "fast_path_match_ms.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)
    w = r.get("wake")
    if w:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        keys = list(w["cpu_ms_per_audio_s"])
        ax.barh(keys, [w["cpu_ms_per_audio_s"][k] for k in keys])
        ax.set_xlabel("CPU ms per second of audio")
        ax.set_title("Wake stage cost: the VAD gate keeps the wake model off in silence")
        fig.tight_layout()
        p = out / "wake_cpu.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)
    return paths
