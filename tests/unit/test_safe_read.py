"""The reading child hands its table back through an anonymous in-memory file: what it read arrives
whole (text bodies as Arrow-backed strings, workbook bodies as cells), mapped where it lies, and
no descriptor or file is left open afterwards, whether the file was read or refused."""

from __future__ import annotations

import gc
import os
import pickle

import numpy as np
import pandas as pd
import pytest

from core.errors import UnreadableFile
from core.ingest import safe_read
from core.ingest.readers import RawTable, read_table
from core.schema import default_column_config, header_lookup

LOOKUP = header_lookup(default_column_config())
CSV = b"CUSIP,BIAS,PX,SOURCE\n97988RBL5,BID,99.5,JPM\n\n000840AG3,OFFER,,MS\n"


@pytest.fixture
def spools():
    """The descriptors this process opened since the test began (the spool's files among them),
    the forkserver's own started first."""
    safe_read.warm(wait=True)
    before = set(os.listdir("/proc/self/fd"))
    return lambda: sorted(set(os.listdir("/proc/self/fd")) - before)


def test_a_csv_read_in_the_child_arrives_whole_and_leaves_no_spool_behind(spools):
    table = read_table(CSV, "colors.csv", LOOKUP, max_mb=0)
    assert table.header == ["CUSIP", "BIAS", "PX", "SOURCE"]
    assert table.body.to_dict("list") == {0: ["97988RBL5", "000840AG3"], 1: ["BID", "OFFER"],
                                          2: ["99.5", ""], 3: ["JPM", "MS"]}
    assert [str(t) for t in table.body.dtypes] == ["string"] * 4
    assert table.rows.tolist() == [2, 4]  # the blank line is row 3
    assert [os.readlink(f"/proc/self/fd/{fd}") for fd in spools()] == [
        "/memfd:marketpulse-read-reply (deleted)"]  # the table's mapping holds its file…
    del table
    gc.collect()
    assert spools() == []  # …until the table is gone


def test_a_refused_file_leaves_no_spool_behind(spools):
    with pytest.raises(UnreadableFile, match=r"notes\.csv"):
        read_table(b"hello,world\n1,2\n", "notes.csv", LOOKUP, max_mb=0)
    assert spools() == []


def test_a_raw_table_of_text_pickles_as_arrow_and_comes_back_equal():
    body = pd.DataFrame({0: pd.array(["A", None], dtype="string"),
                         1: pd.array(["1", "2"], dtype="string")})
    table = RawTable(["CUSIP", "PX"], body, np.array([2, 3]), None, 1)
    back = pickle.loads(pickle.dumps(table))
    pd.testing.assert_frame_equal(back.body, body)
    assert (back.header, back.rows.tolist(), back.sheet, back.header_row) == (
        ["CUSIP", "PX"], [2, 3], None, 1)


def test_a_raw_table_of_workbook_cells_pickles_unchanged():
    body = pd.DataFrame({0: ["A", 1.5], 1: [pd.Timestamp("2026-03-13"), None]}, dtype=object)
    table = RawTable(["CUSIP", "DATE"], body, np.array([2, 3]), "Colors", 1)
    back = pickle.loads(pickle.dumps(table))
    pd.testing.assert_frame_equal(back.body, body)
    assert back.sheet == "Colors"


def _mapped_from(name: str) -> list[tuple[int, int]]:
    """Address ranges this process maps from the memory file called `name` (/proc/self/maps)."""
    with open("/proc/self/maps") as maps:
        return [tuple(int(a, 16) for a in line.split()[0].split("-"))
                for line in maps if f"/memfd:{name} " in line]


def test_a_spooled_table_comes_back_mapped_from_the_spool_not_copied():
    body = pd.DataFrame({0: pd.array([f"{i:09d}" for i in range(100_000)], dtype="string")})
    table = RawTable(["CUSIP"], body, np.arange(2, 100_002), None, 1)
    fd = os.memfd_create("marketpulse-test-reply")
    try:
        safe_read._spool_reply(fd, ("ok", table))
        status, back = safe_read._load_reply(fd)
    finally:
        os.close(fd)
    text = back.body[0].array._pa_array.chunk(0).buffers()[2].address
    assert [(low, high) for low, high in _mapped_from("marketpulse-test-reply")
            if low <= text < high]
    pd.testing.assert_frame_equal(back.body, body)
    back.rows[0] = 1  # copy-on-write: the parent may change what it got
    assert (status, back.rows[:2].tolist(), table.rows[0]) == ("ok", [1, 3], 2)
