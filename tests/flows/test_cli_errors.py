"""Expected failures are one clean line per problem and a non-zero exit, never a traceback;
`check` and `sync` validate the same way, `sync` before anything starts."""

import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.helpers import ROOT

BASE = """
[sources.reseau]
kind = "file"
path = "reseau.csv"
{extra}
[sources.reseau.columns]
nom = "Nom"
"""


def siae(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('encoding = "klingon"', "encoding: 'klingon' is not a known text encoding"),
        ('delimiter = ";;"', "delimiter: must be one character"),
        ('[sources.reseau.expect]\nmin_rows = -1', "expect.min_rows"),
        ('schedule = "tous les jours"', "is not a cron expression"),
    ],
    ids=["unknown-encoding", "two-character-delimiter", "negative-min-rows", "bad-schedule"],
)
def test_check_and_sync_refuse_the_same_file_at_once(tmp_path, extra, message):
    (tmp_path / "reseau.csv").write_text("Nom\nA\n")
    toml = tmp_path / "sources.toml"
    toml.write_text(BASE.format(extra=extra))
    check = siae("check", "--sources", str(toml))
    assert check.returncode == 1 and message in check.stderr
    started = time.monotonic()
    sync = siae("sync", "--sources", str(toml), "--home", str(tmp_path / "wh"))
    assert sync.returncode == 1 and message in sync.stderr
    assert time.monotonic() - started < 10  # no Prefect server was started
    for out in (check, sync):
        assert "Traceback" not in out.stderr and out.stderr.count("error:") == 1
    assert not (tmp_path / "wh").exists()


def test_a_sheet_out_of_range_and_a_missing_file_fail_check(tmp_path):
    shutil.copy(ROOT / "samples" / "dreets_aura.xlsx", tmp_path / "dreets.xlsx")
    toml = tmp_path / "sources.toml"
    toml.write_text(BASE.format(extra="") + '\n[sources.dreets]\nkind = "file"\n'
                    'path = "dreets.xlsx"\nsheet = 5\n[sources.dreets.columns]\nnom = "Nom"\n')
    out = siae("check", "--sources", str(toml))
    assert out.returncode == 1
    assert "source 'dreets': sheet 5 is out of range" in out.stderr
    assert "source 'reseau': path matches no file" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("command", [["publish"], ["publish", "--list"],
                                     ["review", "--list", "--demo"], ["changes"]],
                         ids=["publish", "publish-list", "review-list", "changes"])
def test_commands_on_an_empty_home_say_so_and_create_nothing(tmp_path, command):
    home = tmp_path / "empty"
    out = siae(*command, "--home", str(home))
    assert out.returncode == 1 and "no warehouse" in out.stderr
    assert "Traceback" not in out.stderr and not (home / "siae.duckdb").exists()


def test_the_map_server_answers_404_to_a_nul_byte(tmp_path):
    from flows.mapserver import make_server, serve_in_thread
    from tests.helpers import BASE as ROWS
    from tests.helpers import load

    load(tmp_path, ROWS)
    server = make_server(tmp_path, port=0)
    serve_in_thread(server)
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/%00")
        assert err.value.code == 404
    finally:
        server.shutdown()
        server.server_close()
