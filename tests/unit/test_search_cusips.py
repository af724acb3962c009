"""CUSIPs as desks see them in search: 52406E472 (digits around an E) is a CUSIP in the box, with
--kind cusip and in bulk lists; 37833100 (Excel dropped the leading zero) searches 037833100."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import xlsxwriter
from python_calamine import CalamineWorkbook

from core.__main__ import main
from core.access import SYSTEM
from core.config import load_settings
from core.reads.identifiers import parse_bulk, read_id_file
from core.reads.search import SearchQuery, search_colors
from core.runs import pipeline
from core.schema import CUSIP
from storage import open_store
from tests.data.hostile.files_values import csv_file, row

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = load_settings({}, {})
E_FORM, APPLE = "52406E472", "037833100"
LOST_ZERO = "CUSIP 37833100 lost its leading zero (Excel); searched as 037833100"


def publish(store) -> pipeline.RunResult:
    """One run read from a CSV as a desk sends it: an E-form CUSIP, and 037833100 twice, once
    with its leading zero lost."""
    data = csv_file([row(CUSIP=E_FORM, PX="99.5"), row(CUSIP=APPLE, PX="97"),
                     row(CUSIP="37833100", PX="96")])
    result = pipeline.process_files(store, SYSTEM, [("colors.csv", data)], settings=SETTINGS,
                                    rules=[], now=datetime(2026, 3, 13, 18, tzinfo=UTC))
    assert [p.code for p in result.report.problems] == ["cusip_leading_zero"]
    return result


@pytest.fixture
def store(memory_store):
    publish(memory_store)
    return memory_store


def found(store, **query) -> list[tuple[str, float]]:
    result = search_colors(store, SYSTEM, SearchQuery(**query))
    return [(r.CUSIP, r.PX) for r in result.frame.itertuples()]


def test_a_lost_leading_zero_is_one_security_not_a_second_one(store):
    assert sorted(store.scan("colors")[CUSIP].unique()) == [APPLE, E_FORM]


def test_the_output_workbook_holds_both_cusips_as_text_cells(memory_store):
    workbook = publish(memory_store).workbook
    sheet = CalamineWorkbook.from_filelike(io.BytesIO(workbook)).get_sheet_by_index(0)
    rows = sheet.to_python()
    column = rows[0].index(CUSIP)
    assert sorted(r[column] for r in rows[1:]) == [APPLE, APPLE, E_FORM]


@pytest.mark.parametrize(("text", "kind", "match"), [
    (E_FORM, "auto", "prefix"), ("52406e472", "auto", "contains"), (E_FORM, "cusip", "prefix"),
    (E_FORM, "cusip", "exact"),
])
def test_an_e_form_cusip_in_the_box_finds_its_colors(store, text, kind, match):
    result = search_colors(store, SYSTEM, SearchQuery(text=text, kind=kind, match=match))
    assert [(r.CUSIP, r.PX) for r in result.frame.itertuples()] == [(E_FORM, 99.5)]
    assert (result.text.kind, result.text.value, result.notes) == ("cusip", E_FORM, ())


@pytest.mark.parametrize("match", ["prefix", "exact"])
def test_eight_digits_in_the_box_search_the_cusip_with_its_zero_back_and_say_so(store, match):
    result = search_colors(store, SYSTEM, SearchQuery(text="37833100", match=match))
    assert [(r.CUSIP, r.PX) for r in result.frame.itertuples()] == [(APPLE, 97.0), (APPLE, 96.0)]
    assert result.notes == (LOST_ZERO,)


def id_workbook(path: Path) -> bytes:
    """A CUSIP column as Excel holds it: the E-form as text, 37833100 as a number."""
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet()
    sheet.write_string(0, 0, "CUSIP")
    sheet.write_string(1, 0, E_FORM)
    sheet.write_number(2, 0, 37833100)
    book.close()
    return path.read_bytes()


def test_pasted_and_uploaded_bulk_lists_match_e_form_and_zero_stripped_cusips(store, tmp_path):
    ids_xlsx = id_workbook(tmp_path / "ids.xlsx")
    for ids in (parse_bulk(f"{E_FORM}\n37833100"), read_id_file("ids.xlsx", ids_xlsx),
                read_id_file("ids.csv", f"CUSIP\n{E_FORM}\n37833100\n".encode())):
        result = search_colors(store, SYSTEM, SearchQuery(bulk=tuple(ids)))
        assert [(e.identifier.value, e.status, e.rows, e.reason)
                for e in result.bulk.entries] == [
            (E_FORM, "matched", 1, ""),
            (APPLE, "matched", 2, LOST_ZERO)]


def test_the_cli_searches_an_e_form_cusip_with_kind_cusip(tmp_path, monkeypatch, capsys):
    path = tmp_path / "store"
    publish(open_store(str(path)))
    monkeypatch.setenv("MARKETPULSE_STORE_URL", str(path))
    assert main(["search", E_FORM, "--kind", "cusip"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[:2] == ["Searched cusip 52406E472", "1 parent group(s), 1 row(s); page 1 of 1"]
    done = subprocess.run([sys.executable, "-m", "core", "search", "37833100", "--kind", "cusip"],
                          cwd=ROOT, capture_output=True, text=True, check=False,
                          env={**_environ(), "MARKETPULSE_STORE_URL": str(path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:2] == [
        f"Searched cusip 037833100 ({LOST_ZERO})", "1 parent group(s), 2 row(s); page 1 of 1"]


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MARKETPULSE_")}
