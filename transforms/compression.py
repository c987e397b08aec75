"""The pre-compressed copies of published files (.gz, .br): levels by size, one gzip codec.

Measured on a national release's four text downloads (565 MiB): CPython's zlib at level 6
took 16.7 s of CPU, zlib-ng at level 5 5.9 s for 1% more bytes (at level 6: 9.7 s, 0.4%
fewer). Brotli's lower qualities save little on these files (quality 5: 10% of the time for
3% more bytes), so brotli keeps its levels; above 1 MiB it looks back 16 MiB (the most the
format allows, 4 MiB by default): 2% fewer bytes on the same files in the same time
(19.3-21.4 s against 17.5 s of CPU).
"""

from __future__ import annotations

import brotli
from zlib_ng import gzip_ng

# Above 1 MiB, the highest levels cost 2.5-3 times the time for 2-7% of size (measured on
# the index and the GeoJSON of 30,000 structures).
LARGE = 1 << 20


def gzip_copy(data: bytes) -> bytes:
    """`data` as a gzip file (no name, no date: equal inputs give equal bytes)."""
    return gzip_ng.compress(data, 9 if len(data) < LARGE else 5, mtime=0)


def brotli_copy(data: bytes) -> bytes:
    """`data` compressed with brotli, for `Content-Encoding: br`."""
    if len(data) < LARGE:
        return brotli.compress(data, quality=9)
    return brotli.compress(data, quality=6, lgwin=24)
