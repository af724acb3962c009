"""The blob part's streaming calls (storage.blobs: open_blob, put_blob_file) behave the same on
every backend: the bytes round-trip, a blob bigger than the pieces they move comes back whole, a
reader keeps the bytes of the write it opened, a failed write leaves the old bytes."""

from __future__ import annotations

import io
import os

import pytest

from storage import InvalidKey, ObjectNotFound, Store
from storage.blobs import CHUNK

KEY = "backups/20260316-090000-a1b2c3.zip"


def test_a_file_written_in_pieces_reads_back_whole_from_where_it_stood(store: Store):
    data = os.urandom(2 * CHUNK + 1001)  # three pieces, the last a short one
    file = io.BytesIO(b"skipped" + data)
    file.seek(len(b"skipped"))

    assert store.put_blob_file(KEY, file) == len(data)

    assert store.get_blob(KEY) == data
    with store.open_blob(KEY) as blob:
        assert blob.read() == data
        blob.seek(-1001, io.SEEK_END)  # a zip reader starts at the end
        assert blob.read() == data[-1001:]
        blob.seek(CHUNK - 3)
        assert blob.read(6) == data[CHUNK - 3:CHUNK + 3]


def test_small_and_empty_blobs_stream_too(store: Store):
    assert store.put_blob_file("uploads/empty.csv", io.BytesIO(b"")) == 0
    store.put_blob("uploads/a.csv", b"x,y\n")
    with store.open_blob("uploads/empty.csv") as empty, store.open_blob("uploads/a.csv") as a:
        assert (empty.read(), a.read()) == (b"", b"x,y\n")
    assert store.list_blobs("uploads/") == ["uploads/a.csv", "uploads/empty.csv"]


def test_a_reader_keeps_the_bytes_it_opened_while_the_blob_is_replaced(store: Store):
    store.put_blob(KEY, b"old bytes")
    with store.open_blob(KEY) as blob:
        store.put_blob_file(KEY, io.BytesIO(b"new bytes"))
        assert blob.read() == b"old bytes"
    with store.open_blob(KEY) as blob:
        assert blob.read() == b"new bytes"


class _Breaks(io.RawIOBase):
    """A file that fails after its first piece (a disk error, an upload cut off)."""

    def __init__(self) -> None:
        self.sent = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.sent or size < 0:  # reading it all reaches the break too
            raise OSError("the source file broke")
        self.sent = min(size, CHUNK)
        return b"n" * self.sent


def test_a_write_whose_file_fails_leaves_the_old_bytes(store: Store):
    store.put_blob(KEY, b"old bytes")
    with pytest.raises(OSError, match="the source file broke"):
        store.put_blob_file(KEY, _Breaks())
    assert store.get_blob(KEY) == b"old bytes"
    assert store.list_blobs("") == [KEY]


def test_missing_and_unsafe_keys_and_what_is_not_a_file(store: Store):
    with pytest.raises(ObjectNotFound), store.open_blob("backups/none.zip"):
        pass
    for key in ("../x", "a//b", "a~b"):
        with pytest.raises(InvalidKey), store.open_blob(key):
            pass
        with pytest.raises(InvalidKey):
            store.put_blob_file(key, io.BytesIO(b"x"))
    with pytest.raises(TypeError, match="needs a readable binary file, got bytes"):
        store.put_blob_file(KEY, b"x")  # type: ignore[arg-type]
    assert store.list_blobs("") == []
