"""Upload buffer section of the Manual Color page: queue validated files, the queue, remove one,
clear all (confirmed), the history by status and the template workbook."""

from __future__ import annotations

import io

import openpyxl
import pandas as pd
import pytest
from streamlit.testing.v1 import app_test
from streamlit.testing.v1.element_tree import DownloadButton

from core.access import SYSTEM
from core.compliance.revert import recent_changes
from core.config import load_settings
from core.errors import FileProblem
from core.intake import buffer
from core.schema import INPUT_COLUMNS
from storage import open_store
from tests.factories import SAMPLE
from tests.pages.conftest import upload

PAGE = "pages/manual_color.py"
SETTINGS = load_settings({}, {})
BAD = ("notes.xlsx", bytes(range(256)) * 4)
QUEUE_COLUMNS = ["ID", "File", "Uploaded by", "Uploaded (UTC)", "Rows", "Quarantined", "Quality",
                 "Status", "Claimed by"]


@pytest.fixture
def sample() -> tuple[str, bytes]:
    return SAMPLE.name, SAMPLE.read_bytes()


@pytest.fixture
def served(monkeypatch):
    """Bytes a download button serves (AppTest's media storage, recorded per run)."""
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


def _page(app_as, username="ana", role="analyst"):
    at = app_as(username, role, page=PAGE)
    assert not at.exception
    assert [e.value for e in at.error] == []
    return at


def _queue_files(at, *files: tuple[str, bytes]):
    at = upload(at, "buffer.files", *files)
    at.button(key="buffer.queue").click().run()
    assert not at.exception
    return at


def _click(at, key: str):
    at.button(key=key).click().run()
    assert not at.exception
    assert [e.value for e in at.error] == []
    return at


def _tables(at, column: str) -> list[pd.DataFrame]:
    """The unkeyed tables with that column (AppTest keys only selectable dataframes)."""
    return [d.value for d in at.dataframe if d.key is None and column in d.value.columns]


def _queue_table(at) -> pd.DataFrame:
    (queue,) = [t for t in _tables(at, "Claimed by") if "Run" not in t.columns]
    return queue


def _history(at) -> list[tuple[str, str, str]]:
    (frame,) = _tables(at, "Run")
    return list(zip(frame["ID"], frame["File"], frame["Status"], strict=True))


def test_an_empty_buffer_says_so_and_waits_for_files(app_as):
    at = _page(app_as)
    assert "No files are waiting." in [i.value for i in at.info]
    assert at.button(key="buffer.queue").disabled
    assert ("pending: 0 · claimed: 0 · processed: 0 · failed: 0 · cancelled: 0 · "
            "0 rows uploaded, 0 processed") in at.caption.values


def test_a_queued_file_is_listed_with_its_rows_and_report(app_as, app_store, sample):
    at = _queue_files(_page(app_as), sample)
    assert [e.value for e in at.error] == []
    (entry,) = buffer.list_entries(app_store)
    assert (entry.id, entry.status, entry.uploaded_by, entry.rows) == ("000001", "pending", "ana",
                                                                       50)
    assert [t.value for t in at.toast] == [f"Queued 1 file(s): {sample[0]} (50 rows)"]
    queue = _queue_table(at)
    assert list(queue.columns) == QUEUE_COLUMNS
    assert queue.drop(columns="Uploaded (UTC)").to_dict("records") == [
        {"ID": "000001", "File": sample[0], "Uploaded by": "ana", "Rows": 50, "Quarantined": 0,
         "Quality": 50.0, "Status": "pending", "Claimed by": ""}]
    assert queue["Uploaded (UTC)"].tolist() == [entry.uploaded_at[:16].replace("T", " ")]
    # The row-level report of the file just queued, and of the file picked in the queue.
    # One line per kind of problem: this file's one warning is on every row.
    reports = _tables(at, "ROWS")
    assert [r[["COUNT", "ROWS"]].values.tolist() for r in reports] == [[[50, "2–51"]]] * 2
    assert at.selectbox(key="buffer.pick").value == "000001"
    # The uploader starts empty again, so the same files are not queued twice by accident.
    assert at.button(key="buffer.queue").disabled


def test_several_files_are_queued_in_one_go(app_as, app_store, sample):
    at = _queue_files(_page(app_as), sample, ("copy.xlsx", sample[1]))
    assert [(e.id, e.name, e.rows) for e in buffer.list_entries(app_store)] == [
        ("000001", sample[0], 50), ("000002", "copy.xlsx", 50)]
    assert _queue_table(at)["File"].tolist() == [sample[0], "copy.xlsx"]


def test_a_bad_file_is_named_and_nothing_is_queued(app_as, app_store, sample):
    with pytest.raises(FileProblem) as problem:  # the message core gives, on a scratch store
        buffer.add_files(open_store("memory://"), SYSTEM, [sample, BAD], SETTINGS)
    at = _queue_files(_page(app_as), sample, BAD)
    assert [e.value for e in at.error] == [f"Queueing files: {problem.value}"]
    assert at.error[0].value.startswith("Queueing files: notes.xlsx: ")
    assert buffer.list_entries(app_store, buffer.PENDING) == []
    assert "No files are waiting." in [i.value for i in at.info]
    at.run()  # the history shows the refusal
    assert _history(at) == [("000001", "notes.xlsx", "failed")]


def test_removing_a_file_cancels_it(app_as, app_store, sample):
    buffer.add_files(app_store, SYSTEM, [sample, ("copy.xlsx", sample[1])], SETTINGS)
    at = _page(app_as)
    at.selectbox(key="buffer.pick").set_value("000002").run()
    _click(at, "buffer.remove")
    assert [t.value for t in at.toast] == ["Removed copy.xlsx from the queue"]
    assert [(e.id, e.status) for e in buffer.list_entries(app_store)] == [
        ("000001", "pending"), ("000002", "cancelled")]
    assert _queue_table(at)["ID"].tolist() == ["000001"]
    assert _history(at) == [("000002", "copy.xlsx", "cancelled"),
                            ("000001", sample[0], "pending")]


def test_clear_all_asks_first_then_cancels_every_pending_file(app_as, app_store, sample):
    buffer.add_files(app_store, SYSTEM, [sample, ("copy.xlsx", sample[1])], SETTINGS)
    at = _click(_page(app_as), "buffer.clear")
    assert [w.value for w in at.warning] == ["Remove all 2 pending files from the queue?"]
    _click(at, "buffer.clear_cancel")
    assert [w.value for w in at.warning] == []
    assert len(buffer.list_entries(app_store, buffer.PENDING)) == 2

    _click(_click(at, "buffer.clear"), "buffer.clear_confirm")
    assert [t.value for t in at.toast] == ["Cleared 2 pending file(s)"]
    assert [e.status for e in buffer.list_entries(app_store)] == ["cancelled", "cancelled"]
    assert "No files are waiting." in [i.value for i in at.info]
    assert ("pending: 0 · claimed: 0 · processed: 0 · failed: 0 · cancelled: 2 · "
            "100 rows uploaded, 0 processed") in at.caption.values


def test_the_history_filters_by_status(app_as, app_store, sample):
    buffer.add_files(app_store, SYSTEM, [sample, ("copy.xlsx", sample[1])], SETTINGS)
    buffer.remove(app_store, SYSTEM, "000001")
    at = _page(app_as)
    assert _history(at) == [("000002", "copy.xlsx", "pending"),
                            ("000001", sample[0], "cancelled")]
    at.multiselect(key="buffer.history_status").select("cancelled").run()
    assert _history(at) == [("000001", sample[0], "cancelled")]
    at.multiselect(key="buffer.history_status").set_value(["processed"]).run()
    assert _tables(at, "Run") == []
    assert "No files." in at.caption.values


def test_a_file_claimed_by_a_session_is_shown_as_claimed(app_as, app_store, sample):
    buffer.add_files(app_store, SYSTEM, [sample], SETTINGS)
    buffer.claim_pending(app_store, buffer.session_owner("bob"), ["000001"])
    at = _page(app_as)
    assert _queue_table(at)[["ID", "Status", "Claimed by"]].to_dict("records") == [
        {"ID": "000001", "Status": "claimed", "Claimed by": "session:bob"}]
    assert "Every queued file is claimed by a run or a session." in at.caption.values
    assert "buffer.remove" not in [b.key for b in at.button]


def test_the_template_has_the_colors_and_columns_sheets(app_as, served):
    at = _page(app_as)
    button = next(b for b in at.get("download_button") if b.key == "buffer.template")
    data, name = served(button)
    assert name == "marketpulse-upload-template.xlsx"
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    assert book.sheetnames == ["Colors", "Columns"]
    header, example = list(book["Colors"].iter_rows(values_only=True))
    assert list(header) == list(INPUT_COLUMNS)
    assert example[3] == "97988RBL5"


def test_an_admin_gets_the_buffer_too(app_as, app_store, sample):
    at = _queue_files(_page(app_as, "root", "admin"), sample)
    assert [(e.uploaded_by, e.status) for e in buffer.list_entries(app_store)] == [
        ("root", "pending")]
    assert _queue_table(at)[["ID", "Uploaded by", "Rows"]].to_dict("records") == [
        {"ID": "000001", "Uploaded by": "root", "Rows": 50}]


def test_an_admin_reverts_a_removal_and_analysts_see_no_revert(app_as, app_store, sample):
    buffer.add_files(app_store, SYSTEM, [sample], SETTINGS)
    at = _click(_page(app_as), "buffer.remove")
    assert not [b.key for b in at.button if b.key.startswith("buffer.changes.")]
    at = _page(app_as, "root", "admin")
    removed, queued = recent_changes(app_store, "buffer")
    assert (removed.summary, queued.summary) == (
        f"removed from the queue buffer 000001 ({sample[0]})",
        f"queued buffer 000001 ({sample[0]})")
    at = _click(at, f"buffer.changes.revert_{removed.event_id}")
    assert [(e.id, e.status) for e in buffer.list_entries(app_store)] == [("000001", "pending")]
    assert _queue_table(at)["ID"].tolist() == ["000001"]
