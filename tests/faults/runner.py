"""Run the pipeline without Prefect and kill -9 this process at a given step (a fault of
the matrix):  python -m tests.faults.runner SOURCES HOME STEP

The kill replaces one function the step calls, so that the process dies where a power cut or
an OOM killer would stop it: inside a DuckDB transaction, between writing a release and
swapping it in."""

from __future__ import annotations

import os
import signal
import sys

# step → (module, function) called inside that step
KILL_POINTS = {
    "fetch": ("flows.ingest", "fetch_payloads"),
    "stage": ("warehouse.staging", "replace_table"),  # inside the staging's transaction
    "merge": ("flows.consolidation", "merge_records"),
    "geocode": ("flows.geocoder", "accept"),  # after the answers were cached
    "locate": ("warehouse.core", "record_history"),  # inside the core's transaction
    "publish": ("flows.publish", "_swap"),  # the release written, not swapped in
}


def main(sources: str, home: str, step: str) -> None:
    import importlib

    from flows.sync import sync_direct

    module_name, name = KILL_POINTS[step]
    module = importlib.import_module(module_name)

    def die(*args, **kwargs):
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    setattr(module, name, die)
    sync_direct(sources, home=home)


if __name__ == "__main__":
    main(*sys.argv[1:4])
