"""Core's export entry points log what they serve themselves (issue 13: logging at the entry
points, not left to each page or the CLI): search, dashboard, published colors, the compliance
report."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from core.__main__ import main
from core.access import SYSTEM, Actor
from core.compliance.access_log import load_access_log
from core.compliance.report import export_report
from core.config import load_settings
from core.reads.dashboard import DashboardFilters, export_dashboard
from core.reads.history import export_colors
from core.reads.search import SearchQuery, export_search
from core.runs.pipeline import process_files
from storage import open_store

ANA = Actor("ana", "analyst")
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
CSV = (b"MESSAGE_ID,TICKER,SECTOR,CUSIP,DATE,PX,SOURCE,BIAS\n"
       b"1001,ARES 2025-78A A2,2.0_Mezz,97988RBL5,2026-03-13,99.5,JPM,BID\n"
       b"1002,ARES 2025-78A A2,2.0_Mezz,97988RBL5,2026-03-12,99.0,GS,BID\n")


@pytest.fixture
def store(memory_store):
    process_files(memory_store, SYSTEM, [("a.csv", CSV)], settings=load_settings({}, {}),
                  now=NOW)
    return memory_store


def _exports(store) -> list[tuple[str, str, str, int]]:
    log = load_access_log(store, action="export")
    return [tuple(r) for r in log[["ACTOR", "WHAT", "DETAIL", "ROWS"]].values.tolist()][::-1]


def test_each_export_is_logged_by_core(store):
    query = SearchQuery(text="97988RBL5", kind="cusip", page=3)
    export_search(store, ANA, query, "csv")
    export_dashboard(store, ANA, DashboardFilters(), NOW)
    data, rows = export_colors(store, ANA, "parquet", run_ids=[1])
    assert data.startswith(b"PAR1")
    export_report(store, SYSTEM, date(2026, 11, 30), date(2026, 11, 30), "pdf", now=NOW)
    what = json.dumps({k: v for k, v in query.to_dict().items() if k != "page"}, sort_keys=True)
    exports = _exports(store)
    assert [e[0] for e in exports] == ["ana", "ana", "ana", "system"]
    assert exports[0] == ("ana", what, "csv", 2)
    assert exports[1][1].startswith("dashboard {")
    assert exports[1][2] == "xlsx"
    assert exports[2] == ("ana", "published colors (runs 1)", "parquet", 2)
    assert rows == 2
    assert exports[3][1:3] == ("compliance report 2026-11-30..2026-11-30", "pdf")


def test_the_cli_exports_are_logged_as_the_system(tmp_path, monkeypatch, capsys):
    root = tmp_path / "store"
    process_files(open_store(str(root)), SYSTEM, [("a.csv", CSV)],
                  settings=load_settings({}, {}), now=NOW)
    monkeypatch.setenv("MARKETPULSE_STORE_URL", str(root))
    assert main(["export", "--out", str(tmp_path / "all.csv")]) == 0
    assert main(["search", "97988RBL5", "--out", str(tmp_path / "hits.xlsx")]) == 0
    assert main(["search", "97988RBL5", "--out", str(tmp_path / "hits.txt")]) == 2
    assert "unsupported suffix '.txt' in hits.txt" in capsys.readouterr().err
    exports = _exports(open_store(str(root)))
    assert [(e[0], e[2], e[3]) for e in exports] == [("system", "csv", 2), ("system", "xlsx", 2)]
    assert exports[0][1] == "published colors (all runs)"
