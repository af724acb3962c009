"""`python -m core ...`: process, export, runs, rules, demo, init."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from core.__main__ import main
from core.cli.demo import generate_colors
from core.runs.exports import write_csv
from core.schema import CUSIP, INPUT_COLUMNS, IS_PARENT, RUN_ID
from storage import open_store
from tests.factories import SAMPLE

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store_dir(tmp_path, monkeypatch):
    path = tmp_path / "store"
    monkeypatch.setenv("MARKETPULSE_STORE_URL", str(path))
    return path


def _csv(tmp_path: Path, n: int, name: str = "colors.csv", **kwargs) -> Path:
    path = tmp_path / name
    path.write_bytes(write_csv(generate_colors(n, **kwargs)[list(INPUT_COLUMNS)]))
    return path


def test_process_prints_the_summary_and_writes_the_output(store_dir, tmp_path, capsys):
    out = tmp_path / "run.xlsx"
    assert main(["process", str(SAMPLE), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Run 1 (MANUAL) success" in printed
    assert "read 50, quarantined 0, excluded 0, published 50 (10 parents, 40 children)" in printed
    assert "warning message_id_rounded on 50 row(s)" in printed
    written = pd.read_excel(out, engine="calamine")
    assert len(written) == 50
    assert int(written[IS_PARENT].sum()) == 10
    assert list(written.columns[:4]) == [RUN_ID, "PROCESSED_AT", "PROCESSING_TYPE", "MESSAGE_ID"]


def test_process_csv_with_date_column_and_no_rules(store_dir, tmp_path, capsys):
    rule = {"name": "All", "conditions": {"join": "or", "items": [
        {"column": "PX", "operator": "greater_than", "value": 0}]}}
    (tmp_path / "rule.json").write_text(json.dumps(rule))
    assert main(["rules", "add", str(tmp_path / "rule.json")]) == 0
    src = _csv(tmp_path, 120)
    out = tmp_path / "out.parquet"
    assert main(["process", str(src), "--no-rules", "--date-column", "DATE_1",
                 "--out", str(out)]) == 0
    assert "excluded 0, published 120" in capsys.readouterr().out
    assert len(pd.read_parquet(out)) == 120


def test_whole_file_problem_prints_one_message_and_exits_2(store_dir, tmp_path, capsys):
    bad = tmp_path / "report.xlsx"
    bad.write_bytes(b"this is not a workbook")
    assert main(["process", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: report.xlsx: ")
    assert "Traceback" not in err
    assert not (store_dir / "docs" / "runs").exists()


def test_process_missing_file_is_a_clear_error(store_dir, tmp_path, capsys):
    assert main(["process", str(tmp_path / "nope.csv")]) == 2
    assert "nope.csv" in capsys.readouterr().err


def test_export_all_and_one_run(store_dir, tmp_path, capsys):
    main(["process", str(_csv(tmp_path, 30, "a.csv", seed=1))])
    main(["process", str(_csv(tmp_path, 40, "b.csv", seed=2))])
    capsys.readouterr()
    assert main(["export", "--out", str(tmp_path / "all.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "all.csv")) == 70
    assert main(["export", "--out", str(tmp_path / "two.xlsx"), "--run", "2"]) == 0
    two = pd.read_excel(tmp_path / "two.xlsx", engine="calamine")
    assert len(two) == 40
    assert set(two[RUN_ID]) == {2}
    assert main(["export", "--out", str(tmp_path / "x.csv"), "--run", "9"]) == 2
    assert "run 9 does not exist" in capsys.readouterr().err
    assert main(["export", "--out", str(tmp_path / "x.txt")]) == 2


def test_runs_lists_newest_first(store_dir, tmp_path, capsys):
    main(["process", str(_csv(tmp_path, 10, "a.csv"))])
    main(["process", str(_csv(tmp_path, 12, "b.csv", seed=3))])
    capsys.readouterr()
    assert main(["runs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["RUN", "2", "1"]
    assert lines[1].endswith("b.csv")
    assert lines[2].endswith("a.csv")


def test_rules_add_list_toggle_remove(store_dir, tmp_path, capsys, monkeypatch):
    rule = {"name": "No DZ", "conditions": {"join": "or", "items": [
        {"column": "SOURCE", "operator": "equal_to", "value": "DZ BANK"}]}}
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO(json.dumps(rule)))
    assert main(["rules", "add", "-"]) == 0
    assert main(["rules", "toggle", "no dz"]) == 0
    assert main(["rules", "list"]) == 0
    out = capsys.readouterr().out
    assert "Rule 'No DZ' is now inactive" in out
    assert "No DZ  [inactive]  SOURCE equals 'DZ BANK'" in out
    assert main(["rules", "remove", "No DZ"]) == 0
    assert main(["rules", "remove", "No DZ"]) == 2
    assert "no rule named 'No DZ'" in capsys.readouterr().err


def test_rules_add_rejects_bad_json_and_bad_rules(store_dir, tmp_path, capsys):
    (tmp_path / "bad.json").write_text("{nope")
    assert main(["rules", "add", str(tmp_path / "bad.json")]) == 2
    assert "rule JSON is not valid" in capsys.readouterr().err
    bad_rule = {"name": "Bad", "conditions": {"join": "or", "items": [
        {"column": "PX", "operator": "greater_than", "value": "abc"}]}}
    (tmp_path / "bad_rule.json").write_text(json.dumps(bad_rule))
    assert main(["rules", "add", str(tmp_path / "bad_rule.json")]) == 2
    assert "'abc' is not a number" in capsys.readouterr().err


def test_demo_loads_once_into_an_empty_store(store_dir, capsys):
    assert main(["demo"]) == 0
    assert main(["init"]) == 0
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert out.count("Loaded 5 demo runs") == 1
    assert "Store already has runs; nothing loaded" in out
    published = open_store(str(store_dir)).scan("colors")
    assert published.groupby([RUN_ID, CUSIP])[IS_PARENT].sum().eq(1).all()


def test_init_respects_demo_off(store_dir, monkeypatch, capsys):
    monkeypatch.setenv("MARKETPULSE_DEMO", "0")
    assert main(["init"]) == 0
    assert capsys.readouterr().out == f"Store: {store_dir}\n"
    assert open_store(str(store_dir)).list("runs/") == []


def test_module_runs_as_a_program(store_dir, tmp_path):
    src = _csv(tmp_path, 15)
    done = subprocess.run([sys.executable, "-m", "core", "process", str(src)], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "published 15" in done.stdout
    assert set(open_store(str(store_dir)).scan("colors")[CUSIP].str.len()) == {9}
