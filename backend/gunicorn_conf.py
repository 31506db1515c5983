"""gunicorn settings for the backend: ``gunicorn -c python:backend.gunicorn_conf …``.

Only what the backend needs from the server; workers, binding and the app are given on the
command line (README, "Production").
"""

from __future__ import annotations

from typing import Any

from backend import freeze_startup_objects
from backend.ratelimit import share_between_processes


def on_starting(server: Any) -> None:
    """In the master, before it forks: the workers' rate limits count in one shared table, so a
    limit holds for the server as a whole rather than for each worker."""
    share_between_processes()


def post_worker_init(worker: Any) -> None:
    """Each worker, once it has loaded the app, leaves its start-up objects out of the GC."""
    freeze_startup_objects()
