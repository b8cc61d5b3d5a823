"""CPU and SQL statements per inbound message through the bot, in one process (no HTTP, no load).

A diagnostic beside ``bench_wechat`` (which measures the whole HTTP path under gunicorn): it
enrols patients with five years of checkups, then feeds each a whole PHQ-9 conversation through
``handle_inbound``, one unit of work per message, and reports CPU time and SQL statements per
message by kind: the keyword that starts the flow, the answers, the last answer that ends it
(scores, tags, the next follow-up). Use ``--profile`` for a cProfile listing of where the answers'
CPU goes.

    .venv/bin/python -m bench.profile_inbound                      # PostgreSQL 127.0.0.1:5432/test
    .venv/bin/python -m bench.profile_inbound --database-url sqlite:// --profile
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import event

from bench.common import DEFAULT_PG_URL, scratch_database, synthetic_patients
from bot.messages import InboundMessage
from bot.router import handle_inbound
from care.observations import record_observation
from care.patients import enroll
from careloop import migrate
from careloop.bot_runtime import bot_for
from careloop.runtime import build_runtime
from careloop.settings import Settings
from security.audit import Actor
from security.keys import KeyRing

ACTOR = Actor("system", "bench", "bench")
HISTORY = (("8480-6", "mmHg", 130.0), ("8462-4", "mmHg", 82.0), ("29463-7", "kg", 66.0), ("14771-0", "mmol/L", 5.8),
           ("14647-2", "mmol/L", 5.1), ("14646-4", "mmol/L", 1.3), ("22748-8", "mmol/L", 3.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_PG_URL)
    parser.add_argument("--patients", type=int, default=40)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    with scratch_database(args.database_url, "inbound") as url:
        import tempfile
        from pathlib import Path

        folder = Path(tempfile.mkdtemp(prefix="careloop-profile-"))
        KeyRing.generate(folder / "master.key").save()
        settings = Settings(database_url=url, key_file=folder / "master.key", blob_dir=folder / "blobs")
        runtime = build_runtime(settings)
        migrate.upgrade(runtime.db.engine)
        cards = []
        with runtime.db.unit_of_work() as session:
            start = datetime(2021, 5, 1, tzinfo=UTC)
            for synthetic in synthetic_patients(args.patients):
                patient = enroll(session, synthetic.request(), actor=ACTOR, look_up=False).patient
                for year in range(5):
                    for code, unit, value in HISTORY:
                        record_observation(session, patient, code=code, value=value + year, unit=unit,
                                           effective_at=start + timedelta(days=365 * year), source="bench",
                                           actor=ACTOR, audit=False)
                cards.append(synthetic.card_no)
        services = bot_for(runtime).services
        statements = 0

        def count(*_args: object) -> None:
            nonlocal statements
            statements += 1

        event.listen(runtime.db.engine, "before_cursor_execute", count)
        script = ["问卷", "2", "3", "2", "3", "2", "2", "2", "1", "1", "2"]
        kinds = ["the keyword (a flow starts)", *["an answer"] * (len(script) - 2), "the last answer (the flow ends)"]
        cpu: dict[str, list[float]] = {kind: [] for kind in kinds}
        per_message_statements: dict[str, list[int]] = {kind: [] for kind in kinds}
        profiler = cProfile.Profile() if args.profile else None
        for step, text in enumerate(script):
            for card in cards:
                message = InboundMessage(channel="console", provider_key=f"bench:{uuid.uuid4()}", sender=card,
                                         kind="text", text=text, received_at=runtime.clock.now())
                before_statements = statements
                started = time.process_time()
                if profiler is not None and step > 1:
                    profiler.enable()
                with runtime.db.unit_of_work() as session:
                    handle_inbound(session, services, message)
                if profiler is not None:
                    profiler.disable()
                if step > 0 or card != cards[0]:  # the run's first message also warms the process up
                    cpu[kinds[step]].append((time.process_time() - started) * 1000)
                    per_message_statements[kinds[step]].append(statements - before_statements)
        print(f"database: {runtime.db.dialect}; patients: {len(cards)}")
        print("CPU per message (median, mean) and SQL statements through SQLAlchemy (median):")
        for kind in dict.fromkeys(kinds):
            print(f"  {kind:32} {statistics.median(cpu[kind]):6.2f} ms {statistics.fmean(cpu[kind]):6.2f} ms"
                  f"   {statistics.median(per_message_statements[kind]):3.0f} statements")
        if profiler is not None:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        runtime.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
