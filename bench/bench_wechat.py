"""Inbound WeChat messages through the whole path, under gunicorn on PostgreSQL, against a bare ceiling.

The path: signature and ``msg_signature`` check, AES decrypt, safe XML parse, dedupe claim, patient
lookup (blind index), per-patient lock, one PHQ-9 engine step, encrypted saves (conversation log,
session state, results, audit), the encrypted passive reply. Each request is a distinct MsgId from
one of many bound patients, built with wechatpy's crypto as WeChat sends them. Two message mixes
(``--mix``): ``answers`` (each patient's PHQ-9 is open; every message answers its next item) and
``conversations`` (the keyword, the nine answers and the last question, round and round).

The ceiling: a bare Flask app under the same gunicorn settings that INSERTs each request's body
into one table and answers "success".

Both apps serve at once; ``wrk`` (closed loop, fixed connections, another process on loopback)
saturates one, then the other, for ``--rounds`` alternating rounds, so that both meet the same
drift in the machine's speed; the share of the ceiling is the median of the rounds' shares. Then
a small open-loop generator (``steady`` sub-command, threads + ``http.client``) measures latency
at a steady rate (default 100 messages/s; a request's latency is counted from its scheduled
start, so queueing is not hidden).

    .venv/bin/python -m bench.bench_wechat                       # PostgreSQL 127.0.0.1:5432/test
    .venv/bin/python -m bench.bench_wechat --record              # ...and write the figures into bench/RESULTS.md

Target (issue 4): throughput >= 40% of the ceiling's, and p99 < 100 ms at 100 messages/s.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import queue
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench.common import DEFAULT_PG_URL, machine, percentile, scratch_database, synthetic_patients
from bot.conversations import begin
from care.patients import enroll
from careloop import migrate
from careloop.bot_runtime import bot_for
from careloop.runtime import build_runtime
from careloop.settings import Settings
from security.audit import Actor

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
SECTION = "## WeChat inbound path"
DIAGNOSIS = "### Where the time goes"
ACTOR = Actor("system", "bench", "bench")
TOKEN = "bench-wechat-token"  # noqa: S105 - a synthetic account for the benchmark
APPID = "wxbench0123456789"
SECRET = "bench-wechat-secret"  # noqa: S105 - a synthetic account for the benchmark
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as WeChat gives it
TARGET_SHARE = 0.40
TARGET_P99_MS = 100.0

WRK_SCRIPT = r"""
-- Each wrk thread sends its own share of the prepared requests, in order, each once.
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  local file, threads = args[1], tonumber(args[2])
  prepared = {}
  local line_no = 0
  for line in io.lines(file) do
    if line_no % threads == id then
      local tab = line:find("\t", 1, true)
      prepared[#prepared + 1] = wrk.format("POST", line:sub(1, tab - 1), {["Content-Type"] = "text/xml"},
                                           line:sub(tab + 1))
    end
    line_no = line_no + 1
  end
  position = 0
end
function request()
  position = position + 1
  if position > #prepared then
    position = 1
    exhausted = true
  end
  return prepared[position]
end
function done(summary, latency, requests)
  io.write(string.format("sent-requests: %d\n", summary.requests))
end
"""


# -- the ceiling -----------------------------------------------------------------------------------------
def bare_app() -> Any:
    """A bare Flask app doing one INSERT per request (gunicorn: ``bench.bench_wechat:bare_app()``)."""
    from flask import Flask, Response, request

    from careloop.db import make_engine

    engine = make_engine(os.environ["BENCH_BARE_DATABASE_URL"])
    statement = text("INSERT INTO bench_bare (query, body, received_at) VALUES (:query, :body, :at)")
    app = Flask("bench_bare")

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok", mimetype="text/plain")

    @app.post("/webhooks/wechat")
    def receive() -> Response:
        with engine.begin() as connection:
            connection.execute(statement, {"query": request.query_string.decode(), "body": request.get_data(),
                                           "at": datetime.now(UTC)})
        return Response("success", mimetype="text/plain")

    return app


# -- preparing ---------------------------------------------------------------------------------------------
def enrol_patients(settings: Settings, count: int, *, open_phq9: bool = False) -> list[str]:
    """Enrol ``count`` synthetic patients bound to WeChat; returns their openids.

    With ``open_phq9`` each patient's PHQ-9 is started (as a keyword or a follow-up would), so
    their first message answers its first question.
    """
    runtime = build_runtime(settings, create_key=True)
    try:
        migrate.upgrade(runtime.db.engine)
        services = bot_for(runtime).services
        openids = []
        batch = 500
        patients = list(synthetic_patients(count))
        for start in range(0, count, batch):
            with runtime.db.unit_of_work() as session:
                for index, patient in enumerate(patients[start:start + batch], start=start):
                    openid = f"oBenchWeChat{index:016d}"
                    enrolled = enroll(session, replace(patient.request(), wechat_openid=openid), actor=ACTOR,
                                      look_up=False).patient
                    if open_phq9:
                        begin(session, services, enrolled, "phq9", channel="wechat", actor=ACTOR)
                    openids.append(openid)
        return openids
    finally:
        runtime.close()


def phq9_script(rng: random.Random, mix: str) -> list[str]:
    """One patient's messages.

    ``conversations``: the keyword, nine answers (item 9 mostly "not at all"), the last question,
    round and round. ``answers``: the nine answers to an already open PHQ-9, once each.
    """
    answers = [str(rng.choice("1234")) for _ in range(8)]
    answers[0] = str(rng.choice("234"))  # a total above zero, so the tenth question is asked
    ninth = "1" if rng.random() < 0.9 else str(rng.choice("234"))
    if mix == "answers":
        return [*answers, ninth]
    return ["问卷", *answers, ninth, str(rng.choice("1234"))]


MIXES = {
    "answers": "answers to the open PHQ-9's nine items (each patient's questionnaire already started)",
    "conversations": "whole PHQ-9 conversations: the keyword, nine answers, the last question (scoring, tags, "
                     "the next follow-up), round and round",
}


def prepare_requests(openids: list[str], path: Path, *, count: int, seed: int, mix: str) -> None:
    """Write ``count`` signed, encrypted requests (one per line: path<TAB>body), patients round-robin."""
    from tests.fakes.wechat_server import WeChatPeer

    peer = WeChatPeer(TOKEN, APPID, AES_KEY)
    rng = random.Random(seed)
    scripts = {openid: phq9_script(rng, mix) for openid in openids}
    if mix == "answers" and count > len(openids) * 9:
        raise SystemExit(f"{count} answers need at least {count // 9 + 1} patients (--patients)")
    msg_id = seed * 10**9
    with path.open("w", encoding="utf-8") as out:
        for index in range(count):
            openid = openids[index % len(openids)]
            script = scripts[openid]
            step = (index // len(openids)) % len(script)
            msg_id += 1
            query, body = peer.signed(peer.text_xml(openid, script[step], msg_id=msg_id))
            target = "/webhooks/wechat?" + "&".join(f"{key}={value}" for key, value in query.items())
            out.write(f"{target}\t{body.decode('utf-8')}\n")


# -- serving -----------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def gunicorn(app: str, environment: dict[str, str], *, workers: int, threads: int, workdir: Path,
             log: Path, url: str, application: str) -> Iterator[Server]:
    """Serve ``app`` with gunicorn on a free loopback port."""
    port = free_port()
    # The Procfile's settings file (its post-fork hook included), then this run's worker count and port.
    command = [str(Path(sys.executable).parent / "gunicorn"), "--config", str(ROOT / "gunicorn.conf.py"),
               "--workers", str(workers), "--threads", str(threads),
               "--worker-class", "gthread" if threads > 1 else "sync", "--bind", f"127.0.0.1:{port}",
               "--backlog", "2048", "--log-level", "warning", app]
    env = {**os.environ, **environment, "PYTHONPATH": str(ROOT)}
    with log.open("ab") as log_file:
        process = subprocess.Popen(command, cwd=workdir, env=env, stdout=log_file, stderr=log_file)
    try:
        wait_until_serving(f"127.0.0.1:{port}", process)
        yield Server(f"127.0.0.1:{port}", process.pid, url, application)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_serving(address: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited with {process.returncode}; see its log")
        try:
            connection = http.client.HTTPConnection(address, timeout=2)
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            connection.close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"gunicorn did not answer on {address}")


# -- CPU accounting (robust when other work shares the machine) ----------------------------------------------
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of ``pids`` so far (the processes that still exist)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def children_of(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def database_backends(url: str, application: str) -> list[int]:
    """The PostgreSQL backend processes serving ``application`` (by its application_name)."""
    from careloop.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
                                           {"name": application}).scalars())
    finally:
        engine.dispose()


@dataclass
class Server:
    address: str
    master: int
    url: str
    application: str

    def processes(self) -> tuple[list[int], list[int]]:
        return children_of(self.master), database_backends(self.url, self.application)


# -- loading -----------------------------------------------------------------------------------------------
@dataclass
class Figures:
    requests: int
    seconds: float
    throughput: float
    p50_ms: float
    p99_ms: float
    errors: int
    app_cpu_ms: float = 0.0  # gunicorn workers' CPU per request
    db_cpu_ms: float = 0.0  # their PostgreSQL backends' CPU per request
    load: float = 0.0  # the machine's 1-minute load average at the end

    def line(self) -> str:
        return (f"{self.throughput:8.1f} req/s   p50 {self.p50_ms:7.2f} ms   p99 {self.p99_ms:7.2f} ms   "
                f"CPU/request: app {self.app_cpu_ms:5.2f} ms + db {self.db_cpu_ms:5.2f} ms   "
                f"({self.requests} requests in {self.seconds:.1f} s, {self.errors} errors, load {self.load:.1f})")


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def run_wrk(address: str, requests_file: Path, *, seconds: int, connections: int, threads: int,
            workdir: Path) -> Figures:
    """Closed-loop load with wrk; its own percentiles and its count of non-2xx answers."""
    script = workdir / "wechat.lua"
    script.write_text(WRK_SCRIPT)
    output = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency", "--timeout", "10s",
         "-s", str(script), f"http://{address}", "--", str(requests_file), str(threads)],
        capture_output=True, text=True, check=True, timeout=seconds + 120,
    ).stdout
    found = {label: _ms(value) for label, value in re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, re.MULTILINE)}
    if len(found) < 2:
        raise SystemExit("wrk printed no latency distribution:\n" + output)
    total = int(re.search(r"(\d+) requests in ([\d.]+)(s|m)", output).group(1))  # type: ignore[union-attr]
    throughput = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    prepared = sum(1 for _line in requests_file.open(encoding="utf-8"))
    if total > prepared:
        raise SystemExit(f"wrk sent {total} requests but only {prepared} were prepared: repeats would be answered "
                         "from the receipts and overstate the throughput; prepare more")
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    errors += sum(int(n) for n in re.findall(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                                             output)[0]) if "Socket errors" in output else 0
    return Figures(total, float(seconds), throughput, found["50"], found["99"], errors)


def steady_load(address: str, requests_file: Path, *, rate: float, seconds: float, connections: int) -> Figures:
    """Open-loop load at ``rate`` requests/s; latency counted from each request's scheduled start."""
    lines = requests_file.read_text(encoding="utf-8").splitlines()
    total = min(len(lines), int(rate * seconds))
    work: queue.Queue[tuple[float, str] | None] = queue.Queue()
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def sender() -> None:
        connection = http.client.HTTPConnection(address, timeout=30)
        while (item := work.get()) is not None:
            scheduled, line = item
            target, body = line.split("\t", 1)
            try:
                connection.request("POST", target, body=body.encode("utf-8"), headers={"Content-Type": "text/xml"})
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                connection.close()
                ok = False
            finished = time.perf_counter()
            with lock:
                latencies.append(finished - scheduled)
                errors[0] += 0 if ok else 1
        connection.close()

    pool = [threading.Thread(target=sender, daemon=True) for _ in range(connections)]
    for thread in pool:
        thread.start()
    started = time.perf_counter()
    for index in range(total):
        scheduled = started + index / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        work.put((scheduled, lines[index]))
    for _ in pool:
        work.put(None)
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    ms = [value * 1000 for value in latencies]
    return Figures(total, elapsed, total / elapsed, percentile(ms, 0.50), percentile(ms, 0.99), errors[0])


# -- the run -----------------------------------------------------------------------------------------------
@dataclass
class Phase:
    saturated: Figures  # the median round (by throughput)
    steady: Figures


@dataclass
class Pair:
    """Careloop and the ceiling, measured in alternating rounds under the same conditions."""

    careloop: Phase
    bare: Phase
    shares: list[float]  # per round, Careloop's throughput over the ceiling's

    @property
    def share(self) -> float:
        return statistics.median(self.shares)


def median_round(rounds: list[Figures]) -> Figures:
    return sorted(rounds, key=lambda figures: figures.throughput)[len(rounds) // 2]


def measure_pair(environments: dict[str, dict[str, str]], files: dict[str, Path], args: argparse.Namespace,
                 workdir: Path, url: str, label: str) -> Pair:
    """Both apps served at once; saturate one, then the other, ``args.rounds`` times; then the steady rate.

    The machine's speed drifts (other tenants); alternating short rounds exposes both apps to the
    same drift, and the share is the median of the rounds' shares.
    """
    apps = {"careloop": "careloop:create_app()", "bare": "bench.bench_wechat:bare_app()"}
    with contextlib.ExitStack() as stack:
        servers = {name: stack.enter_context(gunicorn(
            apps[name], environments[name], workers=args.workers, threads=args.threads, workdir=workdir,
            log=workdir / f"gunicorn-{label}-{name}.log", url=url, application=f"bench_{name}")) for name in apps}

        def saturate(name: str, requests: Path, seconds: int) -> Figures:
            server = servers[name]
            return with_cpu(server, lambda: run_wrk(server.address, requests, seconds=seconds,
                                                    connections=args.connections, threads=2, workdir=workdir))

        saturate("careloop", files["warm"], args.warm_seconds)
        saturate("bare", files["bare"], args.warm_seconds)
        rounds: dict[str, list[Figures]] = {"careloop": [], "bare": []}
        for index in range(args.rounds):
            rounds["careloop"].append(saturate("careloop", files[f"load{index}"], args.seconds))
            rounds["bare"].append(saturate("bare", files["bare"], args.seconds))
            print(f"{label:>13} round {index + 1}: careloop {rounds['careloop'][-1].throughput:7.1f} req/s, "
                  f"bare {rounds['bare'][-1].throughput:7.1f} req/s", flush=True)
        steady = {name: with_cpu(servers[name], lambda name=name: steady_load_subprocess(
            servers[name].address, files["steady"], args)) for name in apps}
    phases = {name: Phase(median_round(rounds[name]), steady[name]) for name in apps}
    for name, phase in phases.items():
        print(f"{label:>13} {name:>8} saturated (median round): {phase.saturated.line()}")
        print(f"{label:>13} {name:>8} steady:                   {phase.steady.line()}")
    shares = [mine.throughput / ceiling.throughput for mine, ceiling in zip(rounds["careloop"], rounds["bare"],
                                                                             strict=True)]
    return Pair(phases["careloop"], phases["bare"], shares)


def with_cpu(server: Server, run: Any) -> Figures:
    """Run a load and add the CPU its requests cost the app server and the database."""
    workers, backends = server.processes()
    app_before, db_before = cpu_seconds(workers), cpu_seconds(backends)
    figures: Figures = run()
    workers_after, backends_after = server.processes()
    figures.app_cpu_ms = (cpu_seconds(workers) - app_before) * 1000 / max(1, figures.requests)
    figures.db_cpu_ms = (cpu_seconds(backends) - db_before) * 1000 / max(1, figures.requests)
    if set(workers_after) != set(workers) or not set(backends) >= set(backends_after):
        print("  (note: a worker or backend came or went during the run; its CPU is not counted)")
    figures.load = os.getloadavg()[0]
    return figures


def steady_load_subprocess(address: str, requests_file: Path, args: argparse.Namespace) -> Figures:
    """Run the steady generator in its own process (the load comes from a second process)."""
    output = subprocess.run(
        [sys.executable, "-m", "bench.bench_wechat", "steady", "--address", address, "--requests", str(requests_file),
         "--rate", str(args.rate), "--steady-seconds", str(args.steady_seconds)],
        capture_output=True, text=True, check=True, cwd=ROOT, timeout=args.steady_seconds + 300,
    ).stdout
    return Figures(**json.loads(output.strip().splitlines()[-1]))


def cpu_share(phase: Phase) -> float:
    return phase.saturated.app_cpu_ms + phase.saturated.db_cpu_ms or 1e-9


def verdicts(pair: Pair, rate: float) -> str:
    p99 = pair.careloop.steady.p99_ms
    rounds = ", ".join(f"{share:.0%}" for share in pair.shares)
    return (f"{pair.share:.0%} of the ceiling, median of {len(pair.shares)} rounds ({rounds}) (target >= "
            f"{TARGET_SHARE:.0%}: {'met' if pair.share >= TARGET_SHARE else 'missed'}); by CPU per request "
            f"{cpu_share(pair.bare) / cpu_share(pair.careloop):.0%}; p99 at {rate:g}/s {p99:.1f} ms "
            f"(target < {TARGET_P99_MS:.0f} ms: {'met' if p99 < TARGET_P99_MS else 'missed'})")


def record(args: argparse.Namespace, facts: list[str], pairs: dict[str, Pair], command: str,
           patients: dict[str, int]) -> None:
    lines = [
        SECTION,
        "",
        f"Run on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: `{command}`",
        "",
        "Machine: " + "; ".join(facts),
        "",
        f"gunicorn: {args.workers} workers x {args.threads} thread(s) ({'gthread' if args.threads > 1 else 'sync'}),"
        f" same settings for both apps, both serving at once; wrk (2 threads, {args.connections} connections) "
        f"saturates one then the other, {args.rounds} rounds of {args.seconds} s after a {args.warm_seconds} s "
        f"warm-up each; then an open-loop generator at {args.rate:g}/s for {args.steady_seconds} s; all load "
        "from separate processes on loopback. Bound patients in safe mode, every request a distinct MsgId, never "
        "one sent twice. Message mixes:",
        "",
        *[f"- **{mix}** ({patients[mix]} patients): {MIXES[mix]}" for mix in pairs],
        "",
        "| mix | app | saturated throughput (median round) | p50 | p99 | CPU per request (app + db) | steady rate "
        "| p50 | p99 | errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for mix, pair in pairs.items():
        for name, phase in (("Careloop", pair.careloop), ("bare Flask + 1 INSERT (ceiling)", pair.bare)):
            s, t = phase.saturated, phase.steady
            lines.append(f"| {mix} | {name} | {s.throughput:.0f} req/s | {s.p50_ms:.1f} ms | {s.p99_ms:.1f} ms | "
                         f"{s.app_cpu_ms:.2f} + {s.db_cpu_ms:.2f} ms | {t.throughput:.0f} req/s | {t.p50_ms:.1f} ms | "
                         f"{t.p99_ms:.1f} ms | {s.errors + t.errors} |")
    lines.append("")
    lines += [f"- {mix}: {verdicts(pair, args.rate)}" for mix, pair in pairs.items()]
    loads = ", ".join(f"{mix} {pair.careloop.saturated.load:.1f}" for mix, pair in pairs.items())
    lines += ["", f"Load average after a saturated round: {loads} (2 cores; other work on the machine shows here).",
              ""]
    existing = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    kept = pattern.search(existing)
    if kept and DIAGNOSIS in kept.group(0):  # the hand-written analysis below the figures stays
        lines.append(kept.group(0)[kept.group(0).index(DIAGNOSIS):].rstrip("\n"))
    block = "\n".join(lines) + "\n"
    updated = pattern.sub(lambda _match: block, existing) if pattern.search(existing) else \
        existing.rstrip("\n") + "\n\n" + block
    RESULTS.write_text(updated, encoding="utf-8")
    print(f"recorded in {RESULTS.relative_to(ROOT)}")


# Requests per saturated second prepared for each app: more than either can answer (the run stops
# rather than let wrk repeat a request, which the receipts would answer without processing it).
CAREFUL_RATE = 1500
BARE_RATE = 4000


def run_mix(mix: str, args: argparse.Namespace, workdir: Path) -> tuple[Pair, int, list[str]]:
    """Measure Careloop on one message mix against the ceiling, in a database of its own."""
    counts = {"warm": args.warm_seconds * CAREFUL_RATE, "steady": int(args.rate * args.steady_seconds) + 10,
              **{f"load{index}": args.seconds * CAREFUL_RATE for index in range(args.rounds)}}
    # answers: nine per patient and never more; conversations: each patient goes round and round.
    per_phase = ({phase: count // 9 + 1 for phase, count in counts.items()} if mix == "answers"
                 else {phase: max(1, args.patients // (len(counts) + 1)) for phase in counts})
    total = sum(per_phase.values())
    folder = workdir / mix
    folder.mkdir()
    with scratch_database(args.database_url, f"wechat_{mix}") as url:
        settings = Settings(database_url=url, key_file=folder / "master.key", blob_dir=folder / "blobs")
        print(f"[{mix}] enrolling {total} patients ...", flush=True)
        openids = enrol_patients(settings, total, open_phq9=mix == "answers")
        files = {phase: folder / f"{phase}.txt" for phase in [*per_phase, "bare"]}
        print(f"[{mix}] signing and encrypting the requests ...", flush=True)
        offset = 0
        for seed, (phase, patients) in enumerate(per_phase.items(), start=1):
            prepare_requests(openids[offset:offset + patients], files[phase], count=counts[phase], seed=seed, mix=mix)
            offset += patients
        # The ceiling stores whatever it is sent: any signed requests will do, as many as it can take.
        prepare_requests(openids, files["bare"], count=max(args.seconds, args.warm_seconds) * BARE_RATE, seed=99,
                         mix="conversations")
        careloop = {
            "CARELOOP_KEY_FILE": str(settings.key_file), "CARELOOP_BLOB_DIR": str(settings.blob_dir),
            "CARELOOP_CHANNELS": "console,wechat", "WECHAT_TOKEN": TOKEN, "WECHAT_APPID": APPID,
            "WECHAT_SECRET": SECRET, "WECHAT_AES_KEY": AES_KEY, "WECHAT_API_BASE": "http://127.0.0.1:9",
        }
        named = {label: make_url(url).update_query_dict({"application_name": f"bench_{label}"})
                 .render_as_string(hide_password=False) for label in ("careloop", "bare")}
        careloop["CARELOOP_DATABASE_URL"] = named["careloop"]
        with make_bare_table(url):
            pair = measure_pair({"careloop": careloop, "bare": {"BENCH_BARE_DATABASE_URL": named["bare"]}}, files,
                                args, folder, url, mix)
        facts = machine(url)
    return pair, total, facts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    steady = sub.add_parser("steady", help="(internal) the open-loop generator, run as its own process")
    steady.add_argument("--address", required=True)
    steady.add_argument("--requests", type=Path, required=True)
    steady.add_argument("--rate", type=float, default=100.0)
    steady.add_argument("--steady-seconds", type=float, default=30.0)
    steady.add_argument("--connections", type=int, default=32)
    parser.add_argument("--database-url", default=DEFAULT_PG_URL, help="PostgreSQL URL (a schema of its own is used)")
    parser.add_argument("--mix", choices=[*MIXES, "both"], default="both", help="which message mix (default both)")
    parser.add_argument("--patients", type=int, default=3000,
                        help="bound patients for the conversations mix (the answers mix takes as many as it needs)")
    parser.add_argument("--workers", type=int, default=2,
                        help="gunicorn workers for both apps (default: the Procfile's, WEB_CONCURRENCY=2)")
    parser.add_argument("--threads", type=int, default=1, help="gunicorn threads per worker (1: sync workers)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--seconds", type=int, default=10, help="length of each saturated round")
    parser.add_argument("--rounds", type=int, default=3, help="saturated rounds per app, alternating")
    parser.add_argument("--warm-seconds", type=int, default=5)
    parser.add_argument("--rate", type=float, default=100.0, help="steady rate, messages/s")
    parser.add_argument("--steady-seconds", type=int, default=30)
    parser.add_argument("--record", action="store_true", help="write the figures into bench/RESULTS.md")
    args = parser.parse_args(argv)
    if args.command == "steady":
        figures = steady_load(args.address, args.requests, rate=args.rate, seconds=args.steady_seconds,
                              connections=args.connections)
        print(json.dumps(figures.__dict__))
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: stop gunicorn
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed for the saturated runs: apt-get install wrk")
    command = "python -m bench.bench_wechat " + " ".join(argv if argv is not None else sys.argv[1:])
    workdir = Path(tempfile.mkdtemp(prefix="careloop-bench-wechat-"))
    mixes = list(MIXES) if args.mix == "both" else [args.mix]
    pairs: dict[str, Pair] = {}
    patients: dict[str, int] = {}
    facts: list[str] = []
    try:
        for mix in mixes:
            pairs[mix], patients[mix], facts = run_mix(mix, args, workdir)
        for mix, pair in pairs.items():
            print(f"{mix}: {verdicts(pair, args.rate)}")
        if args.record:
            record(args, facts, pairs, command.strip(), patients)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


@contextmanager
def make_bare_table(url: str) -> Iterator[None]:
    from careloop.db import make_engine

    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE bench_bare (id BIGSERIAL PRIMARY KEY, query TEXT NOT NULL, "
                                    "body BYTEA NOT NULL, received_at TIMESTAMPTZ NOT NULL)"))
        yield
    finally:
        engine.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
