"""Results: `bench/results.json` for machines, a Markdown table for people (printed, written
beside the JSON as `results.md`, and pasted into README.md after a full run).

The targets are reported with the figure that decides them; nothing is asserted.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import reference
from bench.cost import DEFAULT_TIMERS, Cost, minimum_actions
from bench.growth import Length
from bench.latency import Latency
from bench.memory import MemoryResult
from bench.plan import Plan
from bench.throughput import Level
from handoff.config import Settings

KIB = 1024
EXTRAPOLATE_TO = 10_000


@dataclass
class Measurements:
    plan: Plan
    levels: list[tuple[Level, Level]]  # (handoff, baseline) per concurrency, lowest first
    costs: dict[str, Cost]
    memory: MemoryResult
    growth: list[Length]
    machine: dict[str, object]
    run: dict[str, object]


def _r(value: float, digits: int = 1) -> float:
    return round(value, digits) if math.isfinite(value) else value


def results(m: Measurements) -> dict[str, Any]:
    top_handoff, top_baseline = m.levels[-1]
    takeover = Latency.of(top_handoff.timings)
    takeover_baseline = Latency.of(top_baseline.timings)
    handoff_cost, baseline_cost, timers_cost = m.costs["handoff"], m.costs["baseline"], m.costs[DEFAULT_TIMERS]
    minimum = minimum_actions()
    first, last = m.growth[0], m.growth[-1]
    data: dict[str, Any] = {
        "mode": m.plan.name,
        "date": m.run["date"],
        "machine": m.machine,
        "run": m.run,
        "throughput": {
            str(h.concurrency): {
                "handoff": _r(h.per_second, 2),
                "baseline": _r(b.per_second, 2),
                "ratio": _r(h.per_second / b.per_second, 2),
                "conversations": h.conversations,
                "worker_cpu_ms_per_conversation": {
                    "handoff": _r(h.cpu_ms_per_conversation("worker")),
                    "baseline": _r(b.cpu_ms_per_conversation("worker")),
                },
                "worker_cpu_ratio": _r(_cpu_ratio(h, b), 2),
                "server_cpu_ms_per_conversation": {
                    "handoff": _r(h.cpu_ms_per_conversation("server")),
                    "baseline": _r(b.cpu_ms_per_conversation("server")),
                },
                "takeover_ms": _latency(Latency.of(h.timings)),
                "baseline_takeover_ms": _latency(Latency.of(b.timings)),
            }
            for h, b in m.levels
        },
        "takeover_ms": {
            "p50": _r(takeover.takeover_p50),
            "p90": _r(takeover.takeover_p90),
            "p99": _r(takeover.takeover_p99),
            "concurrency": top_handoff.concurrency,
            "samples": len(top_handoff.timings.takeover_ms),
            "baseline": {
                "p50": _r(takeover_baseline.takeover_p50),
                "p90": _r(takeover_baseline.takeover_p90),
                "p99": _r(takeover_baseline.takeover_p99),
            },
        },
        "bot_answer_ms": {
            "p50": _r(takeover.bot_answer_p50),
            "p99": _r(takeover.bot_answer_p99),
            "concurrency": top_handoff.concurrency,
            "samples": len(top_handoff.timings.bot_answer_ms),
            "baseline": {"p50": _r(takeover_baseline.bot_answer_p50), "p99": _r(takeover_baseline.bot_answer_p99)},
        },
        "actions_per_conversation": {
            "handoff": handoff_cost.total_actions,
            "minimum": minimum,
            "baseline": baseline_cost.total_actions,
            "ratio_to_minimum": _r(handoff_cost.total_actions / minimum, 2),
            "handoff_by_kind": dict(handoff_cost.actions.most_common()),
            "baseline_by_kind": dict(baseline_cost.actions.most_common()),
            # `handoff up` starts conversations with timers; the figures above have none.
            "handoff_with_default_timers": timers_cost.total_actions,
            "handoff_with_default_timers_by_kind": dict(timers_cost.actions.most_common()),
            "minimum_rule": (
                f"1 signal-with-start + {reference.INPUTS - 1} other inputs (signal or update) "
                f"+ {reference.BOT_ANSWERS} bot-answer activities"
            ),
        },
        "events_per_conversation": {
            "handoff": handoff_cost.events,
            "baseline": baseline_cost.events,
            "handoff_by_type": dict(handoff_cost.event_types.most_common()),
        },
        "history_bytes_per_conversation": {
            "handoff": handoff_cost.history_bytes,
            "baseline": baseline_cost.history_bytes,
        },
        "memory_kib_per_idle_conversation": _r(m.memory.kib_per_conversation),
        "memory": {
            "warmup_conversations": m.memory.warmup,
            "warmup_rss_kib": m.memory.warmup_rss_kib,
            "levels": [
                {
                    "conversations": level.conversations,
                    "rss_kib": level.rss_kib,
                    "kib_per_conversation": _r(level.kib_per_conversation),
                    "open_seconds": _r(level.create_seconds),
                }
                for level in m.memory.levels
            ],
            "extrapolated_rss_kib_at_10000": extrapolated_rss_kib(m.memory),
            "responded_after_eviction": m.memory.responded_after_eviction,
            "checked_after_eviction": m.memory.checked_after_eviction,
            "eviction_check_seconds": _r(m.memory.eviction_check_seconds),
            "evicted_worker_rss_kib": m.memory.evicted_worker_rss_kib,
        },
        "growth": {
            str(g.messages): {
                "ms_per_message": _r(g.ms_per_message, 2),
                "worker_cpu_ms_per_message": _r(g.cpu_ms_per_message, 2),
                "events_per_message": _r(g.events_per_message, 2),
                "history_bytes_per_message": _r(g.bytes_per_message, 0),
                "runs": g.runs,
            }
            for g in m.growth
        },
        "growth_settings": {
            "window": m.plan.growth_window,
            "continue_as_new_after_events": m.plan.growth_continue_as_new_after_events,
        },
    }
    ratio = min(h.per_second / b.per_second for h, b in m.levels)
    cpu_ratio = max(_cpu_ratio(h, b) for h, b in m.levels)
    actions_ratio = handoff_cost.total_actions / minimum
    kib = m.memory.kib_per_conversation
    responded, checked = m.memory.responded_after_eviction, m.memory.checked_after_eviction
    growth = max(
        _spread([g.cpu_ms_per_message for g in m.growth]),
        _spread([g.events_per_message for g in m.growth]),
        _spread([g.bytes_per_message for g in m.growth]),
    )
    data["targets"] = [
        _target("throughput ≥ 0.8 × baseline at every concurrency", ratio >= 0.8, f"lowest ratio {ratio:.2f}"),
        _target(
            "worker CPU per conversation ≤ 1.3 × baseline at every concurrency",
            cpu_ratio <= 1.3,
            f"highest ratio {cpu_ratio:.2f}",
        ),
        _target(
            f"take-over p99 < 150 ms at {top_handoff.concurrency} at once",
            takeover.takeover_p99 < 150,
            f"{takeover.takeover_p99:.0f} ms",
        ),
        _target(
            "billable actions ≤ 1.25 × minimum",
            actions_ratio <= 1.25,
            f"{handoff_cost.total_actions} / {minimum} = {actions_ratio:.2f}×",
        ),
        _target("< 40 KiB worker memory per idle conversation", kib < 40, f"{kib:.0f} KiB"),
        _target(
            "every idle conversation responds after eviction",
            checked > 0 and responded == checked,
            f"{responded:,} of {checked:,}",
        ),
        _target(
            f"per-message cost flat from {first.messages:,} to {last.messages:,} messages (within 25%)",
            growth <= 1.25,
            f"largest max/min ratio across lengths {growth:.2f} (worker CPU, events, bytes per message)",
        ),
    ]
    return data


def _cpu_ratio(handoff: Level, baseline: Level) -> float:
    """Worker CPU per conversation, Handoff over baseline, in the same run (issue 12's measure)."""
    spent = baseline.cpu_ms_per_conversation("worker")
    return handoff.cpu_ms_per_conversation("worker") / spent if spent > 0 else math.inf


def _spread(values: list[float]) -> float:
    return max(values) / min(values) if values and min(values) > 0 else math.inf


def _latency(latency: Latency) -> dict[str, float]:
    return {"p50": _r(latency.takeover_p50), "p90": _r(latency.takeover_p90), "p99": _r(latency.takeover_p99)}


def _target(name: str, met: bool, shown: str) -> dict[str, Any]:
    return {"target": name, "shown": shown, "met": met}


def markdown(data: dict[str, Any]) -> str:
    machine, run = data["machine"], data["run"]
    shared = (
        f"shared: other processes used {run['others_cpu_share']:.0%} of the CPUs during the run"
        if run["shared"]
        else "machine otherwise quiet"
    )
    lines = [
        f"Run `{data['mode']}` of commit {machine.get('commit', '?')} on {data['date']} — "
        f"{machine['nproc']} × {machine['cpu_model']}, "
        f"{machine['memory_gib']} GiB; Python {machine['python']}, temporalio {machine['temporalio']}, "
        f"{machine['temporal_cli']}; dev server database on {run.get('dev_server_db', '?')}; "
        f"took {run['duration_seconds']:.0f} s; {shared}.",
        "",
        "| Throughput (reference conversations/s) | Handoff | baseline | ratio | worker CPU ms/conv H / B "
        "| worker CPU ratio | server CPU ms/conv H / B | take-over p50 / p99 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for concurrency, t in data["throughput"].items():
        w, s, lat = t["worker_cpu_ms_per_conversation"], t["server_cpu_ms_per_conversation"], t["takeover_ms"]
        lines.append(
            f"| {concurrency} at once ({t['conversations']} conversations) | {t['handoff']:.2f} | "
            f"{t['baseline']:.2f} | **{t['ratio']:.2f}** | {w['handoff']:.0f} / {w['baseline']:.0f} | "
            f"**{t['worker_cpu_ratio']:.2f}** | {s['handoff']:.0f} / {s['baseline']:.0f} | "
            f"{lat['p50']:.0f} / {lat['p99']:.0f} |"
        )
    to, bot = data["takeover_ms"], data["bot_answer_ms"]
    lines += [
        "",
        f"| Latency at {to['concurrency']} at once (ms) | p50 | p90 | p99 |",
        "|---|---|---|---|",
        f"| take-over, update call → answer (Handoff) | {to['p50']:.0f} | {to['p90']:.0f} | **{to['p99']:.0f}** |",
        f"| take-over (baseline) | {to['baseline']['p50']:.0f} | {to['baseline']['p90']:.0f} "
        f"| {to['baseline']['p99']:.0f} |",
        f"| customer message → bot answer in transcript (Handoff) | {bot['p50']:.0f} | | {bot['p99']:.0f} |",
        f"| customer message → answer (baseline) | {bot['baseline']['p50']:.0f} | | {bot['baseline']['p99']:.0f} |",
    ]
    actions, events, size = (
        data["actions_per_conversation"],
        data["events_per_conversation"],
        data["history_bytes_per_conversation"],
    )
    by_kind = ", ".join(f"{kind} {count}" for kind, count in actions["handoff_by_kind"].items())
    lines += [
        "",
        "| Cost per reference conversation | Handoff | baseline | least possible |",
        "|---|---|---|---|",
        f"| billable actions | **{actions['handoff']}** ({actions['ratio_to_minimum']:.2f}×) | "
        f"{actions['baseline']} | {actions['minimum']} |",
        f"| billable actions, with the default timers | {actions['handoff_with_default_timers']} | | |",
        f"| history events | {events['handoff']} | {events['baseline']} | |",
        f"| history size (KiB) | {size['handoff'] / KIB:.1f} | {size['baseline'] / KIB:.1f} | |",
        "",
        f"Handoff's actions: {by_kind}.",
    ]
    mem = data["memory"]
    lines += [
        "",
        "| Idle conversations in Waiting (one worker) | worker RSS (MiB) | KiB per conversation | time to open (s) |",
        "|---|---|---|---|",
        f"| {mem['warmup_conversations']:,} (warm-up, reference) | {mem['warmup_rss_kib'] / KIB:.0f} | | |",
    ]
    for level in mem["levels"]:
        lines.append(
            f"| {level['conversations']:,} | {level['rss_kib'] / KIB:.0f} | **{level['kib_per_conversation']:.0f}** "
            f"| {level['open_seconds']:.0f} |"
        )
    if mem["levels"][-1]["conversations"] < EXTRAPOLATE_TO:
        extrapolated = mem["extrapolated_rss_kib_at_10000"] / KIB
        lines.append(f"| {EXTRAPOLATE_TO:,} (extrapolated, not measured) | {extrapolated:.0f} | | |")
    lines += [
        f"| after eviction (new worker caching 50): {mem['responded_after_eviction']:,} of "
        f"{mem['checked_after_eviction']:,} answered a query | {mem['evicted_worker_rss_kib'] / KIB:.0f} | | "
        f"{mem['eviction_check_seconds']:.0f} (all queries) |",
    ]
    settings = data["growth_settings"]
    can = settings["continue_as_new_after_events"]
    lines += [
        "",
        f"| Growth: one conversation of N messages (≤ {settings['window']} unanswered; continue-as-new "
        + (f"every {can} events" if can else "when Temporal suggests it")
        + ") | ms/message | worker CPU ms/message | events/message | history bytes/message | runs |",
        "|---|---|---|---|---|---|",
    ]
    for messages, g in data["growth"].items():
        lines.append(
            f"| {int(messages):,} | {g['ms_per_message']:.1f} | {g['worker_cpu_ms_per_message']:.1f} | "
            f"{g['events_per_message']:.1f} | {g['history_bytes_per_message']:,.0f} | {g['runs']} |"
        )
    lines += ["", "| Target | measured | met |", "|---|---|---|"]
    for target in data["targets"]:
        lines.append(f"| {target['target']} | {target['shown']} | {'yes' if target['met'] else '**no**'} |")
    return "\n".join(lines) + "\n"


def write(data: dict[str, Any], json_path: Path) -> str:
    json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    text = markdown(data)
    json_path.with_suffix(".md").write_text(text, encoding="utf-8")
    return text


def extrapolated_rss_kib(memory: MemoryResult) -> int:
    """Worker RSS at EXTRAPOLATE_TO idle conversations.

    The worker keeps at most `max_cached_conversations` in memory and holds nothing for the
    others, so past the cache bound RSS stays where the largest measured level put it; below
    it, memory grows by the measured figure per conversation up to the bound.
    """
    cache: int = Settings.model_fields["max_cached_conversations"].default
    last = memory.levels[-1]
    if last.conversations >= cache:
        return last.rss_kib
    per_cached = (last.rss_kib - memory.warmup_rss_kib) / max(last.conversations - memory.warmup, 1)
    return round(last.rss_kib + (min(EXTRAPOLATE_TO, cache) - last.conversations) * per_cached)
