"""gunicorn's settings for the web process (the Procfile's ``web:``); the benchmarks serve with them too.

Environment: ``WEB_CONCURRENCY`` (worker processes, default 2) and ``PORT`` (default 5000), as a
platform that runs Procfiles sets them.
"""

import gc
import os
from typing import Any

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"  # noqa: S104 - the platform's router reaches the web process here
timeout = 30


def post_worker_init(worker: Any) -> None:
    """Take what loading the app allocated (modules, mappers, flows) out of the cyclic collector's sight.

    Those objects live as long as the worker; without this every full collection walks them all
    again, about 25 microseconds per request on average under load (measured in-process, see
    bench/README.md). Garbage made afterwards is collected as usual.
    """
    gc.freeze()
