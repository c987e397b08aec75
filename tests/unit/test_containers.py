"""Containers recognised by their magic bytes, whatever the name says; bombs refused."""

import gzip
import io
import zipfile

import pytest

from transforms.apis import read_fluxiae
from transforms.containers import container_of, unpack
from transforms.errors import ReadError

CSV = b"DEB|x\nstructure_id_siae|structure_denomination\n1|A\nFIN|1\n"


def zipped(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("payload", "kind"),
    [(CSV, "plain"), (gzip.compress(CSV), "gzip"), (zipped({"Structure.csv": CSV}), "zip")],
    ids=["plain", "gzip", "zip-named-csv-gz"],
)
def test_every_container_gives_the_same_rows(payload, kind):
    assert container_of(payload) == kind
    assert unpack(payload) == CSV
    # the ASP's .csv.gz that is in fact a zip is read like the others
    rows = read_fluxiae(payload, "fluxIAE_Structure_02112026_063000.csv.gz",
                        ["structure_id_siae"])
    assert rows == [{"structure_id_siae": "1", "structure_denomination": "A"}]


def test_a_zip_of_several_files_or_a_truncated_gzip_says_what_is_wrong():
    with pytest.raises(ReadError, match="holding 2 files"):
        unpack(zipped({"a.csv": CSV, "b.csv": CSV}))
    with pytest.raises(ReadError, match="truncated or corrupt gzip"):
        unpack(gzip.compress(CSV)[:-10])


def test_a_gzip_or_zip_bomb_is_refused_without_unpacking_it_whole():
    bomb = gzip.compress(b"0" * (20 << 20))  # 20 MB of zeros in ~20 kB
    assert len(bomb) < 100_000
    with pytest.raises(ReadError, match="larger than 1 MB unpacked"):
        unpack(bomb, limit=1 << 20)
    with pytest.raises(ReadError, match="larger than 1 MB unpacked"):
        unpack(zipped({"x.csv": b"0" * (20 << 20)}), limit=1 << 20)
