"""A local geocoder speaking the BAN's CSV contract (tests/helpers.py `ban_handler`), in a
process of its own, for the benchmarks: the real BAN is another machine, and answering
370,000 addresses in the flow's own process took about 7 s of its time (and its GIL).

    python scripts/local_ban.py    # prints its base URL (…/geocodage), serves until stopped
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from werkzeug import Request  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from flows.local_server import _die_with_parent  # noqa: E402
from tests.helpers import ban_handler  # noqa: E402
from tests.synthetic import reference_for_generation  # noqa: E402


def commune_centres() -> dict[str, tuple[float, float]]:
    """INSEE code → the commune's centre, so the local BAN answers near the commune as the real
    one does; an answer far away would make every source point a refused disagreement."""
    communes = reference_for_generation()["communes"].dropna(subset=["centre_lat"])
    points = zip(communes["centre_lat"].astype(float), communes["centre_lon"].astype(float),
                 strict=True)
    return dict(zip(communes["code_insee"], points, strict=True))


@contextlib.contextmanager
def local_ban() -> Iterator[str]:
    """Start the server in a child process (stopped on the way out, and by the kernel if this
    process dies); yield its base URL."""
    child = subprocess.Popen([sys.executable, str(Path(__file__).resolve())],
                             stdout=subprocess.PIPE, text=True, preexec_fn=_die_with_parent)
    try:
        url = child.stdout.readline().strip()
        if not url:
            raise RuntimeError(f"the local BAN did not start (exit code {child.wait()})")
        yield url
    finally:
        child.terminate()
        child.wait(timeout=30)


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    handle = ban_handler(near=commune_centres())
    server = make_server("127.0.0.1", 0, Request.application(handle), threaded=True)
    print(f"http://127.0.0.1:{server.server_port}/geocodage", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
