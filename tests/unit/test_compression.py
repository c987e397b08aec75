"""The .gz and .br copies that static hosts and buckets serve in place of a file."""

import gzip
import random

import brotli
import pytest

from transforms.compression import LARGE, brotli_copy, gzip_copy


def _text(size: int) -> bytes:
    # JSON-like text with repeats, like the published files
    rng = random.Random(size)
    words = [f'"nom":"ACI {i}","commune":"Ville {i % 97}"' for i in range(500)]
    out = bytearray()
    while len(out) < size:
        out += ("{" + rng.choice(words) + "},\n").encode()
    return bytes(out[:size])


@pytest.mark.parametrize("size", [0, 1000, LARGE - 1, LARGE + 1], ids=[
    "empty", "a page", "just under the large level", "a large download"])
def test_copies_decompress_to_the_file(size):
    data = _text(size)
    assert gzip.decompress(gzip_copy(data)) == data
    assert brotli.decompress(brotli_copy(data)) == data


def test_a_gzip_copy_has_no_date_or_name_so_equal_files_give_equal_bytes():
    data = _text(5000)
    copy = gzip_copy(data)
    assert copy == gzip_copy(data)
    assert copy[4:8] == b"\0\0\0\0"  # MTIME
    assert not copy[3] & 0x08  # FLG.FNAME


def test_large_files_at_their_faster_level_still_compress_to_a_fraction():
    data = _text(LARGE * 2)
    # a faster level, yet what a client downloads stays a fraction of the file
    assert len(gzip_copy(data)) < len(data) / 5
    assert len(brotli_copy(data)) < len(data) / 5


def test_a_large_copy_finds_repeats_more_than_4_mib_apart():
    # a national GeoJSON repeats its structure over megabytes: brotli's default window
    # (4 MiB) would compress these two copies of incompressible bytes to their full size
    block = random.Random(1).randbytes(5 << 20)
    data = block + block
    assert len(brotli_copy(data)) < 0.6 * len(data)
    assert brotli.decompress(brotli_copy(data)) == data
