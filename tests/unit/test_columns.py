"""The column configuration: validation, audited edits, preview, and its effect on ingest, publish
and exports."""

from __future__ import annotations

import argparse
import io
import json
from dataclasses import replace
from datetime import UTC, datetime

import pandas as pd
import pytest
from python_calamine import CalamineWorkbook

from core.access import SYSTEM, Actor
from core.audit import load_changes
from core.cli import columns as cli_columns
from core.config import load_settings
from core.errors import Conflict, InvalidInput, MissingColumns, NotFound, PermissionDenied
from core.ingest.color_file import read_colors
from core.ingest.columns import (
    add_alias,
    add_custom_column,
    column_config_problems,
    custom_column_types,
    get_column_config,
    load_column_config,
    preview_mapping,
    remove_alias,
    remove_custom_column,
    save_column_config,
    set_display_name,
    set_required,
    set_visible,
    visible_columns,
)
from core.reads import history
from core.runs import pipeline
from core.runs import records as runs
from core.runs.exports import write_csv
from core.schema import (
    CUSIP,
    INPUT_COLUMNS,
    PX,
    SOURCE,
    TICKER,
    ColumnSpec,
    default_column_config,
)

ANN = Actor("ann", "admin")
BOB = Actor("bob", "analyst")
NOW = datetime(2026, 3, 13, 10, 0, tzinfo=UTC)
SETTINGS = load_settings({}, {})
HEADER = ["MESSAGE_ID", "TICKER", "SECTOR", "CUSIP", "DATE", "PX", "SOURCE", "BIAS"]
ROW = ["17734072432755618", "ARES 2025-78A A2", "2.0_Mezz", "97988RBL5", "2026-03-13", "99.5",
       "JPM", "BID"]
ROW2 = ["17734072432755619", "WDMNT 2022-9A ER", "2.0_Mezz", "000840AG3", "2026-03-13", "95",
        "GS", "OFFER"]
COLLIDE = "each header must map to one column"


@pytest.fixture
def store(memory_store):
    return memory_store


def csv_bytes(*rows: list[str]) -> bytes:
    return "\n".join(",".join(row) for row in rows).encode()


def edited(column: str, **changes) -> list[ColumnSpec]:
    return [replace(s, **changes) if s.name == column else s for s in default_column_config()]


def message(exc: pytest.ExceptionInfo) -> str:
    return str(exc.value)


# -- validation -----------------------------------------------------------------------------------
def test_the_defaults_are_a_valid_configuration():
    assert column_config_problems(default_column_config()) == []


CUSTOM = ColumnSpec("DESK_NOTE", custom=True)


@pytest.mark.parametrize(("specs", "problems"), [
    ([s for s in default_column_config() if s.name != CUSIP],
     ["column CUSIP cannot be removed: it is one of the 18 canonical columns"]),
    ([*default_column_config(), CUSTOM, CUSTOM], ["column DESK_NOTE is listed twice"]),
    (edited(PX, custom=True), ["column PX is a canonical column and cannot be marked custom"]),
    (edited(PX, type="text"), ["column PX: the type of a canonical column is fixed (number)"]),
    (edited(CUSIP, required=False),
     ["column CUSIP must stay required: the engine needs it (of the required columns only TICKER "
      "can be made optional)"]),
    (edited(TICKER, required=False), []),
    (edited("COV_PRICE", required=True), []),
    ([*default_column_config(), ColumnSpec("DESK_NOTE")],
     ["column DESK_NOTE is not a canonical column; add it as a custom column"]),
    ([*default_column_config(), ColumnSpec("Desk note", custom=True)],
     ["custom column 'Desk note': a name is 2–41 upper-case letters, digits or _, starting with a "
      "letter"]),
    ([*default_column_config(), ColumnSpec("X", custom=True)],
     ["custom column 'X': a name is 2–41 upper-case letters, digits or _, starting with a "
      "letter"]),
    ([*default_column_config(), ColumnSpec("A" * 42, custom=True)],
     [f"custom column '{'A' * 42}': a name is 2–41 upper-case letters, digits or _, starting "
      "with a letter"]),
    ([*default_column_config(), ColumnSpec("RUN_ID", custom=True)],
     ["custom column RUN_ID: the name is used by MarketPulse for its own column"]),
    ([*default_column_config(), ColumnSpec("EXCLUDED_BY", custom=True)],
     ["custom column EXCLUDED_BY: the name is used by MarketPulse for its own column"]),
    ([*default_column_config(), ColumnSpec("DESK_NOTE", type="money", custom=True)],
     ["custom column DESK_NOTE: type 'money' is not one of text, number, integer, date, boolean, "
      "timestamp"]),
    (edited(PX, display_name="   "), ["column PX: the display name cannot be empty"]),
    (edited(PX, aliases=["PX LAST", " - "]), ["column PX: an alias cannot be empty"]),
    (edited(CUSIP, aliases=["Dealer"]),
     [f"alias 'DEALER' of column SOURCE is also an alias of column CUSIP; {COLLIDE}"]),
    (edited(CUSIP, aliases=["px"]), [f"alias 'px' of column CUSIP is also the name of column PX; "
                                     f"{COLLIDE}"]),
    (edited("DIFF_STATUS", display_name="Date Received"),
     [f"display name 'Date Received' of column DIFF_STATUS is also the display name of column "
      f"DATE_1; {COLLIDE}"]),
    (edited("BID", display_name="P X"),
     [f"display name 'P X' of column BID is also the name of column PX; {COLLIDE}"]),
])
def test_each_validation_problem_names_its_column(specs, problems):
    assert column_config_problems(specs) == problems


def test_a_collision_blames_what_is_new_since_the_stored_configuration():
    specs = [*edited(CUSIP, aliases=["CUSIP ID", "Dealer"]), ColumnSpec("BROKER", custom=True)]
    assert column_config_problems(specs, default_column_config()) == [
        f"name 'BROKER' of column BROKER is also an alias of column SOURCE; {COLLIDE}",
        f"display name 'Broker' of column BROKER is also an alias of column SOURCE; {COLLIDE}",
        f"alias 'Dealer' of column CUSIP is also an alias of column SOURCE; {COLLIDE}",
    ]


def test_save_refuses_an_invalid_configuration_listing_every_problem(store):
    specs = [s for s in edited(PX, display_name=" ") if s.name != CUSIP]
    with pytest.raises(InvalidInput) as exc:
        save_column_config(store, ANN, specs)
    assert message(exc) == (
        "column configuration: column CUSIP cannot be removed: it is one of the 18 canonical "
        "columns; column PX: the display name cannot be empty")
    assert get_column_config(store)[1] is None


# -- saving and editing ---------------------------------------------------------------------------
def test_an_analyst_cannot_change_the_column_configuration(store):
    with pytest.raises(PermissionDenied) as exc:
        add_alias(store, BOB, CUSIP, "Cusip No")
    assert message(exc) == "bob is not allowed to edit the column configuration"
    with pytest.raises(PermissionDenied):
        save_column_config(store, BOB, default_column_config())


def test_save_is_audited_with_the_whole_configuration_before_and_after(store):
    specs = [*edited(TICKER, required=False), ColumnSpec("DESK_NOTE", custom=True)]
    saved = save_column_config(store, ANN, specs, now=NOW)
    assert load_column_config(store) == saved == specs
    change = load_changes(store, area="columns").iloc[0]
    assert (change["ACTOR"], change["ACTION"], change["ENTITY"], change["DETAIL"]) == (
        "ann", "update", "column configuration", "changed TICKER; added DESK_NOTE")
    assert json.loads(change["BEFORE"]) == {
        "columns": [s.to_dict() for s in default_column_config()]}
    assert json.loads(change["AFTER"]) == {"columns": [s.to_dict() for s in specs]}


def test_save_with_a_stale_version_is_a_conflict(store):
    add_alias(store, ANN, CUSIP, "Cusip No")
    specs, version = get_column_config(store)
    add_alias(store, ANN, CUSIP, "Cusip Number")
    with pytest.raises(Conflict) as exc:
        save_column_config(store, ANN, specs, expected_version=version)
    assert message(exc) == ("the column configuration was changed by someone else since it was "
                            "opened; reload it and try again")


def test_each_edit_is_logged_with_a_summary(store):
    add_alias(store, ANN, "cusip", " Cusip No ", now=NOW)
    remove_alias(store, ANN, CUSIP, "security-id", now=NOW)
    add_custom_column(store, ANN, "desk_note", "text", "Desk note", now=NOW)
    set_visible(store, ANN, "DESK_NOTE", False, now=NOW)
    set_display_name(store, ANN, PX, "Ranking price", now=NOW)
    set_required(store, ANN, TICKER, False, now=NOW)
    remove_custom_column(store, ANN, "DESK_NOTE", now=NOW)
    assert load_changes(store, area="columns")["DETAIL"].tolist()[::-1] == [
        "added alias 'Cusip No' to CUSIP",
        "removed alias 'security-id' from CUSIP",
        "added custom column DESK_NOTE (text)",
        "DESK_NOTE: hidden",
        "PX: display name 'Ranking price'",
        "TICKER: optional",
        "removed custom column DESK_NOTE",
    ]
    specs = {s.name: s for s in load_column_config(store)}
    assert specs[CUSIP].aliases == ["CUSIP ID", "Cusip No"]
    assert (specs[PX].display_name, specs[TICKER].required) == ("Ranking price", False)
    assert "DESK_NOTE" not in specs


@pytest.mark.parametrize(("edit", "error", "text"), [
    (lambda s: add_alias(s, ANN, CUSIP, "cusip-id"), InvalidInput,
     "alias: column CUSIP already accepts 'cusip-id'"),
    (lambda s: add_alias(s, ANN, CUSIP, "  "), InvalidInput,
     "alias: column CUSIP: an alias cannot be empty"),
    (lambda s: add_alias(s, ANN, CUSIP, "Dealer"), InvalidInput,
     f"column configuration: alias 'Dealer' of column CUSIP is also an alias of column SOURCE; "
     f"{COLLIDE}"),
    (lambda s: add_alias(s, ANN, "NOPE", "x"), NotFound,
     "there is no column 'NOPE' in the column configuration"),
    (lambda s: remove_alias(s, ANN, CUSIP, "Cusip No"), InvalidInput,
     "alias: column CUSIP has no alias 'Cusip No'"),
    (lambda s: remove_custom_column(s, ANN, CUSIP), InvalidInput,
     "column: column CUSIP cannot be removed: it is one of the 18 canonical columns"),
    (lambda s: add_custom_column(s, ANN, "COLOR_ID"), InvalidInput,
     "column configuration: custom column COLOR_ID: the name is used by MarketPulse for its own "
     "column"),
    (lambda s: add_custom_column(s, ANN, "CUSIP"), InvalidInput,
     "column: there is already a column CUSIP"),
    (lambda s: set_display_name(s, ANN, PX, " "), InvalidInput,
     "display name: column PX: the display name cannot be empty"),
    (lambda s: set_required(s, ANN, SOURCE, False), InvalidInput,
     "column configuration: column SOURCE must stay required: the engine needs it (of the "
     "required columns only TICKER can be made optional)"),
])
def test_a_refused_edit_says_why_and_changes_nothing(store, edit, error, text):
    with pytest.raises(error) as exc:
        edit(store)
    assert message(exc) == text
    assert get_column_config(store) == (default_column_config(), None)
    assert load_changes(store, area="columns").empty


def test_visible_columns_and_custom_types_follow_the_configuration(store):
    add_custom_column(store, ANN, "LOT_SIZE", "number")
    set_visible(store, ANN, "DIFF_STATUS", False)
    specs = load_column_config(store)
    assert visible_columns(specs) == [c for c in INPUT_COLUMNS if c != "DIFF_STATUS"] + [
        "LOT_SIZE"]
    assert custom_column_types(specs) == {"LOT_SIZE": "number"}
    assert specs[-1].display_name == "Lot Size"


# -- effects on ingest, publish and exports -------------------------------------------------------
def test_a_file_with_a_new_alias_ingests_after_the_alias_is_added(store):
    data = csv_bytes([*HEADER[:6], "Dealer Code", "BIAS"], ROW)
    with pytest.raises(MissingColumns) as exc:
        read_colors(data, "new.csv", columns=load_column_config(store))
    assert exc.value.missing == [SOURCE]
    with pytest.raises(MissingColumns):
        pipeline.process_files(store, SYSTEM, [("new.csv", data)], settings=SETTINGS)
    add_alias(store, ANN, SOURCE, "Dealer Code")
    batch = read_colors(data, "new.csv", columns=load_column_config(store))
    assert batch.frame[SOURCE].tolist() == ["JPM"]
    result = pipeline.process_files(store, SYSTEM, [("new.csv", data)], settings=SETTINGS)
    assert result.published[SOURCE].tolist() == ["JPM"]


def test_a_custom_column_reaches_the_published_table_and_the_exports(store):
    add_custom_column(store, ANN, "DESK_NOTE", "text", "Desk note")
    add_custom_column(store, ANN, "LOT_SIZE", "number")
    data = csv_bytes([*HEADER, "Desk note", "lot size", "Region"],
                     [*ROW, "watch", "2000000", "US"], [*ROW2, "", "500000", "EU"])
    result = pipeline.process_files(store, SYSTEM, [("desk.csv", data)], settings=SETTINGS,
                                    now=NOW)
    expected = {"97988RBL5": ("watch", 2_000_000.0), "000840AG3": (None, 500_000.0)}

    def values(frame: pd.DataFrame) -> dict[str, tuple]:
        return {row[CUSIP]: (None if pd.isna(row["DESK_NOTE"]) else row["DESK_NOTE"],
                             row["LOT_SIZE"]) for _, row in frame.iterrows()}

    assert values(result.published) == expected
    assert "Region" not in result.published.columns
    table = store.scan(runs.COLORS_TABLE)
    assert values(table) == expected
    assert values(history.published_colors(store, SYSTEM)) == expected
    sheet = CalamineWorkbook.from_filelike(io.BytesIO(result.workbook)).get_sheet_by_name(
        "Colors").to_python()
    header = sheet[0]
    assert header[-2:] == ["DESK_NOTE", "LOT_SIZE"]
    assert {r[header.index(CUSIP)]: (r[-2] or None, r[-1]) for r in sheet[1:]} == expected
    exported = pd.read_csv(io.BytesIO(write_csv(table)), dtype=str, encoding="utf-8-sig")
    assert list(exported.columns[-2:]) == ["DESK_NOTE", "LOT_SIZE"]


# -- preview --------------------------------------------------------------------------------------
def test_preview_maps_each_header_and_lists_missing_required_columns(store):
    add_custom_column(store, ANN, "DESK_NOTE", "text", "Desk note")
    data = csv_bytes(["Msg Id", "Security", "Asset Class", "Cusip", "Cusip Id", "As of date", "",
                      "PX", "Type", "Desk Note", "Region"])
    frame = preview_mapping(data, "preview.csv", load_column_config(store))
    expected = pd.DataFrame({
        "HEADER": ["Msg Id", "Security", "Asset Class", "Cusip", "Cusip Id", "As of date", "PX",
                   "Type", "Desk Note", "Region", pd.NA],
        "COLUMN": ["MESSAGE_ID", TICKER, "SECTOR", CUSIP, "ignored", "DATE", PX, "BIAS",
                   "DESK_NOTE", "ignored", SOURCE],
        "NOTE": ["", "", "", "", "'Cusip' already maps to CUSIP", "", "", "", "",
                 "not a configured column or alias", "required, not found"],
    }, dtype="string")
    pd.testing.assert_frame_equal(frame, expected)


# -- CLI ------------------------------------------------------------------------------------------
def cli(store, *argv: str) -> int:
    parser = argparse.ArgumentParser()
    cli_columns.add_parser(parser.add_subparsers(dest="command", required=True))
    return cli_columns.run(parser.parse_args(["columns", *argv]), store, SETTINGS)


def test_cli_adds_an_alias_and_lists_the_configuration(store, capsys):
    assert cli(store, "alias", "source", "Dealer Code") == 0
    assert capsys.readouterr().out == ("SOURCE now accepts the headers: SOURCE, Source, DEALER, "
                                       "CONTRIBUTOR, BROKER, Dealer Code\n")
    assert cli(store, "unalias", SOURCE, "broker") == 0
    assert capsys.readouterr().out == ("SOURCE now accepts the headers: SOURCE, Source, DEALER, "
                                       "CONTRIBUTOR, Dealer Code\n")
    set_visible(store, ANN, TICKER, False)
    assert cli(store, "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 19
    assert lines[2].split() == ["TICKER", "text", "required,hidden", "Ticker", "SECURITY,",
                                "SECURITY", "NAME,", "DEAL"]


def test_cli_refuses_an_unknown_column(store):
    with pytest.raises(NotFound):
        cli(store, "alias", "NOPE", "x")


def test_cli_previews_a_file(store, tmp_path, capsys):
    path = tmp_path / "colors.csv"
    path.write_bytes(csv_bytes([*HEADER, "Region"], [*ROW, "US"]))
    assert cli(store, "preview", str(path)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["MESSAGE_ID", "→", "MESSAGE_ID"]
    assert out[-1].split() == ["Region", "→", "ignored", "(not", "a", "configured", "column", "or",
                               "alias)"]


def test_an_edit_that_changes_nothing_writes_and_logs_nothing(store):
    set_visible(store, ANN, PX, True)
    save_column_config(store, ANN, default_column_config())
    assert get_column_config(store) == (default_column_config(), None)
    assert load_changes(store, area="columns").empty
