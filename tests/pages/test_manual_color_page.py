"""Manual Color: upload → check (validation report, ranked preview) → publish one MANUAL run."""

from __future__ import annotations

import io
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from streamlit.testing.v1 import app_test
from streamlit.testing.v1.element_tree import DownloadButton

from core import history, pipeline, runs
from core.access import SYSTEM
from core.conditions import Condition, Group
from core.config import load_settings
from core.errors import FileProblem
from core.rules import Rule, save_rule
from core.schema import CUSIP, IS_PARENT, SOURCE

PAGE = "pages/manual_color.py"
SETTINGS = load_settings({}, {})
SAMPLE = Path(__file__).resolve().parents[3] / "shared/samples/colors-2026-01-11.xlsx"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SELECT = "Select a parent to see its children."


@pytest.fixture
def sample() -> tuple[str, bytes]:
    if not SAMPLE.exists():
        pytest.skip(f"the shared sample {SAMPLE} is not here")
    return SAMPLE.name, SAMPLE.read_bytes()


@pytest.fixture
def served(monkeypatch):
    """Bytes a download button serves, by its URL. AppTest keeps them in an in-memory media
    storage created (and dropped) by every run; this records each one so a test can read them."""
    storages = []

    class Recording(app_test.MemoryMediaFileStorage):
        def __init__(self, endpoint: str) -> None:
            super().__init__(endpoint)
            storages.append(self)

    monkeypatch.setattr(app_test, "MemoryMediaFileStorage", Recording)

    def read(button: DownloadButton) -> tuple[bytes, str | None]:
        file = storages[-1].get_file(button.proto.url.rsplit("/", 1)[1])
        return file.content, file.filename

    return read


def _page(app_as, role="analyst"):
    at = app_as("ana", role, page=PAGE)
    assert not at.exception
    assert at.title[0].value == "Manual Color"
    return at


def _check(at, *files: tuple[str, bytes]):
    at.file_uploader(key="manual_color.files").set_value(
        [(name, data, XLSX) for name, data in files]).run()
    assert not at.exception
    at.button(key="manual_color.check").click().run()
    assert not at.exception
    return at


def _publish(at):
    at.button(key="manual_color.publish").click().run()
    assert not at.exception
    return at


def _problems_table(at) -> pd.DataFrame:
    (frame,) = [d.value for d in at.dataframe if "CODE" in d.value.columns]
    return frame


def _preview_caption(ranked: pd.DataFrame) -> str:
    parents = int(ranked[IS_PARENT].sum())
    return f"{parents} parents, {len(ranked) - parents} children. {SELECT}"


def test_the_check_button_waits_for_a_file(app_as):
    at = _page(app_as)
    assert at.button(key="manual_color.check").disabled
    assert [s.value for s in at.subheader] == []


def test_checking_the_sample_shows_its_report_and_ten_parents(app_as, app_store, sample):
    at = _check(_page(app_as), sample)
    assert [e.value for e in at.error] == []
    prepared = pipeline.prepare_files(app_store, [sample], SETTINGS)
    assert (len(prepared.valid), len(prepared.quarantined)) == (50, 0)
    assert [s.value for s in at.subheader] == ["Validation", "Ranked preview"]
    assert [(m.label, m.value) for m in at.metric] == [
        ("Quality score", f"{prepared.report.quality_score:.1f}/100"),
        ("Blocking problems", "0"), ("Warnings", "50")]
    assert at.metric[0].value == "50.0/100"
    problems = _problems_table(at)
    assert problems["ROW"].tolist() == list(range(2, 52))  # Excel's row numbers
    assert set(problems["CODE"]) == {"message_id_rounded"}

    preview = at.dataframe(key="manual_color.preview").value
    ranked, _ = pipeline.rank_batch(prepared.valid, [], SETTINGS)
    assert preview[CUSIP].tolist() == ranked.loc[ranked[IS_PARENT], CUSIP].tolist()
    assert preview[CUSIP].nunique() == 10
    assert at.caption.values == ["0 rows excluded by rules", f"10 parents, 40 children. {SELECT}"]
    assert runs.load_runs(app_store) == []  # checking stores nothing


def test_publishing_stores_exactly_one_manual_run(app_as, app_store, sample):
    at = _publish(_check(_page(app_as), sample))
    assert [e.value for e in at.error] == []
    (record,) = runs.load_runs(app_store)
    assert (record.run_id, record.kind, record.status, record.actor, record.trigger) == (
        1, "MANUAL", runs.SUCCESS, "ana", "manual_upload")
    assert {k: record.counts[k] for k in ("read", "published", "parents", "excluded",
                                          "quarantined")} == {
        "read": 50, "published": 50, "parents": 10, "excluded": 0, "quarantined": 0}
    assert [s.value for s in at.success] == [
        "Published run 1: 50 colors (10 parents), 0 excluded, 0 quarantined."]
    published = history.published_colors(app_store, SYSTEM)
    assert (len(published), set(published["PROCESSING_TYPE"])) == (50, {"MANUAL"})

    # The prepared batch is gone: no Publish button, so rerunning cannot publish it again.
    assert "manual_color.publish" not in [b.key for b in at.button]
    at.run()
    assert not at.exception
    assert [r.run_id for r in runs.load_runs(app_store)] == [1]
    assert [s.value for s in at.success] == [
        "Published run 1: 50 colors (10 parents), 0 excluded, 0 quarantined."]


def test_a_second_click_on_publish_publishes_nothing(app_as, app_store, sample):
    at = _check(_page(app_as), sample)
    button = at.button(key="manual_color.publish")
    # The page before the first click; its checkbox keeps its value once the widget is gone.
    at.checkbox(key="manual_color.apply_rules").set_value(True)
    button.click().run()
    assert [r.run_id for r in runs.load_runs(app_store)] == [1]
    button.click().run()  # the same page's button again, as a double click sends it
    assert not at.exception
    assert [r.run_id for r in runs.load_runs(app_store)] == [1]


def test_the_download_is_the_runs_output_workbook(app_as, app_store, sample, served):
    at = _publish(_check(_page(app_as), sample))
    button = next(b for b in at.get("download_button") if b.key == "manual_color.download")
    assert button.label == "Download the output workbook"
    data, name = served(button)
    assert name == "colors-run-1.xlsx"
    (record,) = runs.load_runs(app_store)
    assert data == app_store.get_blob(record.output)

    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    assert list(rows[0][:4]) == ["RUN_ID", "PROCESSED_AT", "PROCESSING_TYPE", "MESSAGE_ID"]
    assert len(rows) == 51  # header + the 50 published colors
    assert {r[0] for r in rows[1:]} == {1}
    assert {r[2] for r in rows[1:]} == {"MANUAL"}


def test_a_file_that_is_not_a_spreadsheet_is_named_and_nothing_is_stored(app_as, app_store):
    bad = ("x.xlsx", bytes(range(256)) * 4)
    with pytest.raises(FileProblem) as problem:
        pipeline.prepare_files(app_store, [bad], SETTINGS)
    at = _check(_page(app_as), bad)
    assert [e.value for e in at.error] == [f"Reading the files: {problem.value}"]
    assert at.error[0].value.startswith("Reading the files: x.xlsx: ")
    assert [s.value for s in at.subheader] == []  # no report, no preview, no Publish
    assert "manual_color.publish" not in [b.key for b in at.button]
    assert runs.load_runs(app_store) == []
    assert app_store.partitions(runs.COLORS_TABLE) == []


def test_a_viewer_cannot_open_the_page(app_as):
    at = app_as("vera", "viewer")
    assert not at.exception
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(PAGE)


def test_unchecking_apply_rules_previews_and_publishes_without_them(app_as, app_store, sample):
    save_rule(app_store, SYSTEM, Rule(
        name="No MS", conditions=Group("or", [Condition(SOURCE, "equal_to", "MS")])))
    at = _check(_page(app_as), sample)
    prepared = pipeline.prepare_files(app_store, [sample], SETTINGS)
    with_rules, outcome = pipeline.rank_batch(
        prepared.valid, pipeline.active_rules(app_store), SETTINGS)
    assert len(outcome.excluded) == 6
    assert at.checkbox(key="manual_color.apply_rules").value is True
    assert at.caption.values == ["6 rows excluded by rules; No MS: 6",
                                 _preview_caption(with_rules)]

    at.checkbox(key="manual_color.apply_rules").uncheck().run()
    assert not at.exception
    assert at.caption.values == ["0 rows excluded by rules", f"10 parents, 40 children. {SELECT}"]

    _publish(at)
    (record,) = runs.load_runs(app_store)
    assert (record.counts["published"], record.counts["excluded"], record.rules_applied) == (
        50, 0, [])
