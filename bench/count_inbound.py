"""Instructions per inbound WeChat answer, counted by valgrind: a figure that does not drift with the machine.

Wall-clock and CPU-time figures on a shared machine move by tens of percent from one minute to
the next; an instruction count does not. This enrols patients (each PHQ-9 open) in a scratch
PostgreSQL schema, signs one answer per patient as WeChat would, and replays them through the
webhook called as a WSGI app in one process (no HTTP server) under ``valgrind --tool=callgrind``,
counting only the measured requests (instrumentation is switched on after the warm-up requests
with ``callgrind_control``). The same for the bare ceiling app (one INSERT per request).

    .venv/bin/python -m bench.count_inbound                 # Careloop and the ceiling, 150 answers each
    .venv/bin/python -m bench.count_inbound --count 300     # more answers, a steadier mean

Counts only the Python process; PostgreSQL's own work is not in it. Needs valgrind (Debian's).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from werkzeug.test import EnvironBuilder, run_wsgi_app

from bench.bench_wechat import (
    AES_KEY,
    APPID,
    SECRET,
    TOKEN,
    bare_app,
    enrol_patients,
    make_bare_table,
    prepare_requests,
)
from bench.common import DEFAULT_PG_URL, scratch_database
from careloop.settings import Settings

WARM = 10


def replay(app: Any, lines: list[str]) -> None:
    """POST each prepared request (path?query<TAB>body) to ``app``; every answer must be 200."""
    for line in lines:
        target, body = line.split("\t", 1)
        path, query = target.split("?", 1)
        environ = EnvironBuilder(path=path, query_string=query, method="POST", data=body.encode("utf-8"),
                                 content_type="text/xml").get_environ()
        answer, status, _headers = run_wsgi_app(app, environ, buffered=True)
        if not status.startswith("200"):
            raise SystemExit(f"request refused: {status} {b''.join(answer)[:200]!r}")


def measured(requests: Path, which: str) -> None:
    """(Run under callgrind.) Build the app, warm it up, then replay the rest with instrumentation on."""
    from careloop import create_app

    app = bare_app() if which == "bare" else create_app()
    lines = requests.read_text(encoding="utf-8").splitlines()
    replay(app, lines[:WARM])
    toggle = ["callgrind_control", "-i"]
    subprocess.run([*toggle, "on", str(os.getpid())], check=True, capture_output=True)
    replay(app, lines[WARM:])
    subprocess.run([*toggle, "off", str(os.getpid())], check=True, capture_output=True)


def count(requests: Path, which: str, environment: dict[str, str], workdir: Path) -> int:
    """Instructions of the measured requests of one app, as callgrind reports them."""
    output = subprocess.run(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={workdir / f'{which}.out'}",
         sys.executable, "-m", "bench.count_inbound", "measured", "--requests", str(requests), "--app", which],
        capture_output=True, text=True, check=True, env={**os.environ, **environment},
        cwd=Path(__file__).resolve().parent.parent,
    ).stderr
    collected = [line for line in output.splitlines() if "Collected" in line]
    if not collected:
        raise SystemExit("callgrind reported no count:\n" + output[-2000:])
    return int(collected[-1].split()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    inner = sub.add_parser("measured", help="(internal) the replay run under callgrind")
    inner.add_argument("--requests", type=Path, required=True)
    inner.add_argument("--app", choices=["careloop", "bare"], required=True)
    parser.add_argument("--database-url", default=DEFAULT_PG_URL, help="PostgreSQL URL (a schema of its own is used)")
    parser.add_argument("--count", type=int, default=150, help="measured answers per app")
    args = parser.parse_args(argv)
    if args.command == "measured":
        measured(args.requests, args.app)
        return 0
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind is needed: apt-get install valgrind")
    workdir = Path(tempfile.mkdtemp(prefix="careloop-bench-count-"))
    try:
        with scratch_database(args.database_url, "count") as url:
            settings = Settings(database_url=url, key_file=workdir / "master.key", blob_dir=workdir / "blobs")
            total = WARM + args.count
            print(f"enrolling {2 * total} patients ...", flush=True)
            openids = enrol_patients(settings, 2 * total, open_phq9=True)
            environment = {
                "CARELOOP_DATABASE_URL": url, "CARELOOP_KEY_FILE": str(settings.key_file),
                "CARELOOP_BLOB_DIR": str(settings.blob_dir), "CARELOOP_CHANNELS": "console,wechat",
                "WECHAT_TOKEN": TOKEN, "WECHAT_APPID": APPID, "WECHAT_SECRET": SECRET, "WECHAT_AES_KEY": AES_KEY,
                "WECHAT_API_BASE": "http://127.0.0.1:9", "BENCH_BARE_DATABASE_URL": url,
            }
            figures = {}
            with make_bare_table(url):
                for seed, which in enumerate(("careloop", "bare"), start=1):
                    # Signed just before the run: WeChat's timestamps are refused after five minutes.
                    requests = workdir / f"{which}.txt"
                    prepare_requests(openids[(seed - 1) * total:seed * total], requests, count=total, seed=seed,
                                     mix="answers")
                    figures[which] = count(requests, which, environment, workdir) / args.count
                    print(f"{which:>8}: {figures[which] / 1e6:.2f} million instructions per answer", flush=True)
            print(f"ceiling / Careloop: {figures['bare'] / figures['careloop']:.0%}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
