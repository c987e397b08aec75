"""Compressed containers, recognised by their magic bytes whatever the file's name says.

The ASP ships `fluxIAE_Structure_*.csv.gz` files that are in fact ZIP archives holding one
CSV (les emplois' importer notes that "the file extension does not represent the compression
used"). Every file source goes through `unpack`: gzip and single-member zip are opened, plain
bytes pass through, and the unpacked size is capped so that a small hostile file cannot fill
the memory (a zip bomb).
"""

from __future__ import annotations

import io
import os
import zipfile
import zlib

from transforms.errors import ReadError

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
# Far above any real SIAE file (data·inclusion's national file is ~100 MB unpacked);
# SIAE_MAX_UNPACKED_MB sets another cap.
MAX_UNPACKED_BYTES = 1 << 30


def _cap() -> int:
    mb = os.environ.get("SIAE_MAX_UNPACKED_MB")
    return int(mb) << 20 if mb and mb.isdigit() else MAX_UNPACKED_BYTES


def container_of(data: bytes) -> str:
    """gzip, zip or plain."""
    if data[:2] == GZIP_MAGIC:
        return "gzip"
    if data[:4] == ZIP_MAGIC:
        return "zip"
    return "plain"


def _gunzip(data: bytes, limit: int) -> bytes:
    out, total = [], 0
    stream = zlib.decompressobj(wbits=47)  # gzip header, and concatenated members
    pending = data
    while pending:
        chunk = stream.decompress(pending, 1 << 20)
        total += len(chunk)
        if total > limit:
            raise ReadError(f"gzip content larger than {limit >> 20} MB unpacked: refused")
        out.append(chunk)
        pending = stream.unconsumed_tail
        if stream.eof and stream.unused_data:
            pending, stream = stream.unused_data, zlib.decompressobj(wbits=47)
    if not stream.eof:
        raise ReadError("truncated or corrupt gzip: the stream ends early")
    return b"".join(out)


def _unzip(data: bytes, limit: int) -> bytes:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ReadError(f"corrupt zip archive: {exc}") from exc
    members = [m for m in archive.infolist() if not m.is_dir()]
    if len(members) != 1:
        raise ReadError(f"a zip archive holding {len(members)} files "
                        f"({', '.join(m.filename for m in members[:5])}); one was expected")
    member = members[0]
    out, total = [], 0
    try:
        with archive.open(member) as fh:
            while chunk := fh.read(1 << 20):
                total += len(chunk)
                if total > limit:
                    raise ReadError(f"zip member {member.filename} larger than "
                                    f"{limit >> 20} MB unpacked: refused")
                out.append(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise ReadError(f"corrupt zip member {member.filename}: {exc}") from exc
    return b"".join(out)


def unpack(data: bytes, limit: int | None = None) -> bytes:
    """The content of a gzip or single-file zip container, or the bytes themselves."""
    limit = limit or _cap()
    kind = container_of(data)
    if kind == "gzip":
        try:
            return _gunzip(data, limit)
        except zlib.error as exc:
            raise ReadError(f"truncated or corrupt gzip: {exc}") from exc
    if kind == "zip":
        return _unzip(data, limit)
    return data
