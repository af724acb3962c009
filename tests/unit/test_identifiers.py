"""Reading a search box and bulk id lists: CUSIPs, MESSAGE_IDs, tickers and Excel-mangled ids."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from core.errors import InvalidInput, UnreadableFile
from core.reads.identifiers import (
    CUSIP_ID,
    DIGITS_REASON,
    MANGLED,
    MESSAGE_ID_ID,
    ROUNDED_REASON,
    SCIENTIFIC_REASON,
    TICKER_ID,
    Identifier,
    classify,
    parse_bulk,
    read_id_file,
)
from core.runs.exports import write_xlsx


@pytest.mark.parametrize(("token", "kind", "value", "reason"), [
    ("97988RBL5", CUSIP_ID, "97988RBL5", ""),
    (" 97988rbl5 ", CUSIP_ID, "97988RBL5", ""),
    ("037833100", CUSIP_ID, "037833100", ""),
    ("97988RBL4", CUSIP_ID, "97988RBL4", "check digit does not match"),
    ("37833100", CUSIP_ID, "037833100",
     "CUSIP 37833100 lost its leading zero (Excel); searched as 037833100"),
    ("52406E472", CUSIP_ID, "52406E472", ""),
    ("52406e472", CUSIP_ID, "52406E472", ""),
    ("52406E473", MANGLED, "", SCIENTIFIC_REASON),
    ("17734072432755618", MESSAGE_ID_ID, "17734072432755618", ""),
    ("17734072432755618.0", MESSAGE_ID_ID, "17734072432755618", ""),
    ("17734072432755600", MESSAGE_ID_ID, "17734072432755600", ROUNDED_REASON),
    ("1.7734E+16", MANGLED, "", SCIENTIFIC_REASON),
    ("1.7734072432756E+16", MANGLED, "", SCIENTIFIC_REASON),
    ("1,77E+16", MANGLED, "", SCIENTIFIC_REASON),
    ("12345", MANGLED, "", DIGITS_REASON),
    ("ARES 2025-78A A2", TICKER_ID, "ARES 2025-78A A2", ""),
    ("ares   2025-78a", TICKER_ID, "ares 2025-78a", ""),
    ("BLUEMOUNT", TICKER_ID, "BLUEMOUNT", ""),
])
def test_each_kind_of_token_is_recognised(token, kind, value, reason):
    assert classify(token) == Identifier(" ".join(token.split()), kind, value, reason)


def test_a_partial_search_reads_digits_as_a_message_id_part():
    assert classify("1773407243", partial=True).kind == MESSAGE_ID_ID
    assert classify("1773407243").kind == MANGLED


def test_a_forced_kind_wins_over_the_guess():
    assert classify("037833100", MESSAGE_ID_ID) == Identifier(
        "037833100", MESSAGE_ID_ID, "037833100")
    assert classify("97988RBL5", TICKER_ID).kind == TICKER_ID
    assert classify("ARES", CUSIP_ID) == Identifier("ARES", MANGLED, "", "not a 9-character CUSIP")


def test_only_a_rounded_message_id_is_suspect():
    assert classify("17734072432755600").suspect
    assert not classify("17734072432755618").suspect
    assert not classify("97988RBL5").suspect


def test_bulk_text_splits_ids_but_keeps_a_ticker_per_line():
    ids = parse_bulk("97988RBL5 000840AG3, 1.7734E+16; ARES 2025-78A A2\n"
                     "17734072432755618\t037833100\n\n97988rbl5\nWDMNT 2022-9A ER")
    assert [(i.kind, i.value or i.text) for i in ids] == [
        (CUSIP_ID, "97988RBL5"), (CUSIP_ID, "000840AG3"), (MANGLED, "1.7734E+16"),
        (TICKER_ID, "ARES 2025-78A A2"), (MESSAGE_ID_ID, "17734072432755618"),
        (CUSIP_ID, "037833100"), (TICKER_ID, "WDMNT 2022-9A ER"),
    ]


def test_bulk_text_of_mangled_excel_numbers_reports_each():
    ids = parse_bulk("1.7734E+16\n1.7734072432756E+16\n17734072432755600")
    assert [(i.kind, i.reason) for i in ids] == [
        (MANGLED, SCIENTIFIC_REASON), (MANGLED, SCIENTIFIC_REASON),
        (MESSAGE_ID_ID, ROUNDED_REASON)]


def test_an_uploaded_csv_uses_its_named_columns():
    data = (b"Note,CUSIP,MESSAGE_ID\nx,97988RBL5,17734072432755618\n"
            b"y,000840AG3,1.7734E+16\n")
    ids = read_id_file("ids.csv", data)
    assert [(i.kind, i.value or i.text) for i in ids] == [
        (CUSIP_ID, "97988RBL5"), (CUSIP_ID, "000840AG3"), (MESSAGE_ID_ID, "17734072432755618"),
        (MANGLED, "1.7734E+16")]


def test_an_uploaded_csv_without_names_uses_its_first_column_and_skips_a_header():
    ids = read_id_file("ids.csv", b"Securities,comment\n97988RBL5,a\n037833100,b\n")
    assert [i.value for i in ids] == ["97988RBL5", "037833100"]


def test_an_uploaded_workbook_reports_ids_excel_stored_as_numbers():
    frame = pd.DataFrame({"TICKER": ["ARES 2025-78A A2", "WDMNT 2022-9A ER"],
                          "MESSAGE_ID": [17734072432755618.0, 17734072432755600.0]})
    ids = read_id_file("ids.xlsx", write_xlsx(frame, sheet_name="Ids"))  # MESSAGE_ID first
    assert [(i.kind, i.value or i.text) for i in ids] == [
        (MANGLED, "1.7734072432755618e+16"), (MANGLED, "1.77340724327556e+16"),
        (TICKER_ID, "ARES 2025-78A A2"), (TICKER_ID, "WDMNT 2022-9A ER")]
    assert [i.reason for i in ids[:2]] == [SCIENTIFIC_REASON, SCIENTIFIC_REASON]


def test_a_text_file_is_read_like_pasted_text():
    assert [i.value for i in read_id_file("ids.txt", b"97988RBL5\n000840AG3\n")] == [
        "97988RBL5", "000840AG3"]


def test_an_unknown_file_type_is_refused():
    with pytest.raises(InvalidInput, match=r"use \.xlsx"):
        read_id_file("ids.pdf", b"%PDF")


def test_identifiers_round_trip_through_dicts():
    ident = classify("17734072432755600")
    assert Identifier.from_dict(ident.to_dict()) == ident


@pytest.mark.parametrize(("name", "reason"), [
    ("far-cell-no-dimension.xlsx", "could not be read safely"),
    ("bomb-sheet.xlsx", "unpacks to 600 MB"),
    ("billion-laughs.xlsx", "document type declaration"),
])
def test_a_hostile_id_file_is_refused_by_name_and_the_process_lives(name, reason):
    data = (Path(__file__).resolve().parents[1] / "data" / "hostile" / name).read_bytes()
    with pytest.raises(UnreadableFile) as raised:
        read_id_file(name, data)
    assert str(raised.value).startswith(f"{name}: ")
    assert reason in str(raised.value)
