"""Steps per second of the flow engine on the PHQ-9 flow, on one core (target: over 20,000 steps/s).

A step is one ``flows.engine.step`` call with a patient's reply: parsing the reply, saving the
answer, running the nodes that follow (branches, scores, actions) up to the next question, and
building the new state, outputs and events. Each session answers the nine items and item 10, with
a mix of digits, full-width digits, labels, speech-like replies and one invalid reply (a re-ask); one
session in four answers item 9 above zero (urgent task and safety message). The process is pinned to
one CPU, and both steps per wall-clock second and per CPU-second are measured: on a shared machine
the second is what one core does. Three figures: the engine alone; the engine with the state stored
as JSON between steps (as the bot keeps it); the engine plus rendering the outputs for a text channel.

    .venv/bin/python bench/bench_flows.py
    .venv/bin/python bench/bench_flows.py --seconds 10 --write    # also updates bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from time import perf_counter, process_time

from flows.engine import TextInput, start, step
from flows.facts import Facts
from flows.registry import FlowLibrary
from flows.render import render

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Flow engine"
TARGET = 20_000
NOW = datetime(2025, 1, 6, 9, 0, tzinfo=timezone(timedelta(hours=8)))

# Replies for q1..q9, one invalid reply (re-asked) and q10: four kinds of sessions, taken in turn.
SESSIONS: list[list[str]] = [
    ["2", "3", "1", "2", "1", "4", "1", "2", "1", "2"],
    ["１", "好几天", "2", "x", "３", "几乎每天", "1", "完全不会", "二", "1", "3"],
    ["Several days", "4", "4", "3", "2", "1", "1", "2", "2", "4"],
    ["一半以上的天数", "1", "2", "0", "2", "2", "1", "1", "1", "1", "1"],
]


def pin_to_one_core() -> str:
    """Pin this process to one CPU, if the platform allows; return which."""
    if hasattr(os, "sched_setaffinity") and hasattr(os, "sched_getaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity on this platform)"


def check_sessions() -> None:
    """Make sure each scripted session ends exactly at its last reply (so every step counted is real work)."""
    definition = FlowLibrary.builtin().get("phq9")
    facts = Facts.build(age=58, sex="female")
    for number, session in enumerate(SESSIONS, start=1):
        result = start(definition, facts, lang="zh", now=NOW)
        for position, text in enumerate(session, start=1):
            if result.ended:
                raise SystemExit(f"session {number} ended before reply {position}")
            result = step(definition, result.state, facts, TextInput(text), now=NOW)
        if not result.ended or result.state["end_status"] != "completed":
            raise SystemExit(f"session {number} did not complete")


def run_for(seconds: float, variant: str) -> tuple[int, float, float]:
    """Run PHQ-9 sessions for about ``seconds``; return (steps, elapsed seconds, CPU seconds)."""
    definition = FlowLibrary.builtin().get("phq9")
    facts = Facts.build(age=58, sex="female")
    replies = [[TextInput(text) for text in session] for session in SESSIONS]
    as_json = variant == "json"
    with_render = variant == "render"
    steps = 0
    cpu_started = process_time()
    started = perf_counter()
    deadline = started + seconds
    turn = 0
    while perf_counter() < deadline:
        result = start(definition, facts, lang="zh", now=NOW)
        state = result.state
        for reply in replies[turn % len(replies)]:
            if as_json:
                state = json.loads(json.dumps(state))
            result = step(definition, state, facts, reply, now=NOW)
            if with_render:
                for output in result.outputs:
                    render(output, "text")
            state = result.state
            steps += 1
        turn += 1
    return steps, perf_counter() - started, process_time() - cpu_started


def measure(seconds: float, rounds: int, variant: str) -> tuple[list[float], list[float]]:
    """Return steps per wall-clock second and per CPU second for each round (after a warm-up)."""
    run_for(0.5, variant)
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(rounds):
        steps, elapsed, used = run_for(seconds / rounds, variant)
        wall.append(steps / elapsed)
        cpu.append(steps / used)
    return wall, cpu


def machine() -> dict[str, str]:
    """Return the facts of this machine that the results depend on."""
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        nproc = str(os.cpu_count())
    version = f"{platform.python_version()} ({platform.python_implementation()})"
    return {"nproc": nproc, "cpu": cpu, "python": version}


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def write_section(text: str) -> None:
    """Put ``text`` (a whole section) into RESULTS.md, replacing an older Flow engine section."""
    content = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    start_at = content.find(SECTION)
    if start_at == -1:
        content = content.rstrip("\n") + "\n\n" + text
    else:
        end_at = content.find("\n## ", start_at + len(SECTION))
        rest = content[end_at + 1 :] if end_at != -1 else ""
        content = content[:start_at] + text + ("\n" + rest if rest else "")
    RESULTS.write_text(content.rstrip("\n") + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print (and with --write, record) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=6.0, help="measuring time per variant (default 6)")
    parser.add_argument("--rounds", type=int, default=6, help="rounds per variant; the median is reported")
    parser.add_argument("--write", action="store_true", help="record the results in bench/RESULTS.md")
    args = parser.parse_args(argv)

    check_sessions()
    facts = machine()  # before pinning: nproc counts the CPUs this process may use
    pinned = pin_to_one_core()
    variants: list[tuple[str, str, Callable[[], tuple[list[float], list[float]]]]] = [
        ("engine", "engine alone", lambda: measure(args.seconds, args.rounds, "engine")),
        ("json", "engine + state through JSON each step", lambda: measure(args.seconds, args.rounds, "json")),
        ("render", "engine + text rendering of the outputs", lambda: measure(args.seconds, args.rounds, "render")),
    ]
    load_before = _load()
    lines = []
    headline = headline_cpu = 0.0
    for key, label, run in variants:
        wall, cpu = run()
        median, median_cpu = statistics.median(wall), statistics.median(cpu)
        if key == "engine":
            headline, headline_cpu = median, median_cpu
        line = (
            f"- {label}: median {median:,.0f} steps/s wall-clock ({1e6 / median:.1f} µs/step; rounds "
            f"{min(wall):,.0f}-{max(wall):,.0f}), {median_cpu:,.0f} steps per CPU-second"
        )
        lines.append(line)
        print(line)
    load_after = _load()
    # "On one core": steps per CPU-second is what one core does, whatever else shares the machine;
    # the wall-clock figure is reported beside it, with the load.
    verdict = "met" if headline_cpu > TARGET else "NOT met"
    command = "`.venv/bin/python bench/bench_flows.py" + (
        f" --seconds {args.seconds:g}" if args.seconds != 6.0 else ""
    ) + (f" --rounds {args.rounds}" if args.rounds != 6 else "") + " --write`"
    section = "\n".join(
        [
            SECTION,
            "",
            f"Command: {command}",
            "",
            f"- nproc: {facts['nproc']} ({pinned})",
            f"- CPU: {facts['cpu']}",
            f"- Python: {facts['python']}",
            f"- load average (1 min) before/after: {load_before} / {load_after} (other work shares this machine; "
            "the CPU-second figure is what one core does on its own)",
            "",
            "PHQ-9 sessions (nine items, item 10, one re-ask in two sessions of four, item 9 positive in one), "
            f"replies as digits, full-width digits, labels and speech-like text; {args.rounds} rounds of "
            f"{args.seconds / args.rounds:.1f} s per variant:",
            "",
            *lines,
            "",
            f"Target > {TARGET:,} steps/s on one core: {verdict} - {headline_cpu:,.0f} steps per CPU-second "
            f"({1e6 / headline_cpu:.1f} µs of CPU per step); {headline:,.0f} steps/s wall-clock while sharing the "
            f"machine (load {load_before}-{load_after} on {facts['nproc']} CPUs).",
            "",
        ]
    )
    print(f"target > {TARGET:,} steps/s on one core (CPU time): {verdict}")
    if args.write:
        write_section(section)
        print(f"written to {RESULTS}")
    return 0 if headline_cpu > TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
