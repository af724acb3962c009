"""Read a color file into the canonical frame (DOMAIN.md §1.1): map the headers, coerce every
column, derive the blank derived fields, and report unreadable cells with file, sheet, row and
column. Whole-file problems raise one FileProblem."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.config import Settings, load_settings
from core.errors import MissingColumns, UnreadableFile
from core.ingest.coercion import coerce_column, normalise_bias, text_from_codes
from core.ingest.readers import RawTable, read_table
from core.ingest.validation import Problem, cell_message
from core.schema import (
    ASK,
    BIAS,
    BIAS_RANK,
    BID,
    COLUMN_TYPE,
    COV_PRICE,
    DERIVABLE,
    DIFF_STATUS,
    INPUT_COLUMNS,
    PANDAS_DTYPES,
    PERCENT_DIFF,
    PRICE_DIFF,
    PRICE_LEVEL,
    PX,
    RANK,
    SECTOR,
    SIGNIFICANT,
    SMALL,
    SOURCE_FILE,
    SOURCE_ROW,
    SOURCE_SHEET,
    ColumnSpec,
    default_column_config,
    header_lookup,
    normalise_header,
)

log = logging.getLogger(__name__)

_COERCE_THREADS = 2
PRICE_DIFF_DECIMALS = 6  # PX − COV without float noise (101.7 − 102.2 = −0.5, not −0.50000000001)


@dataclass
class RawBatch:
    """One file read into canonical columns, with the problems found while reading it."""

    frame: pd.DataFrame
    problems: list[Problem]
    file: str
    sheet: str | None


def _default_settings() -> Settings:
    return load_settings({}, {})


def read_colors(
    data: bytes,
    filename: str,
    *,
    columns: list[ColumnSpec] | None = None,
    settings: Settings | None = None,
) -> RawBatch:
    """Read .xlsx/.xls/.csv/.parquet bytes into the 18 input columns (in order), the custom
    columns of the configuration, and SOURCE_FILE/SOURCE_SHEET/SOURCE_ROW; derive blank fields.

    Raises UnreadableFile (not a spreadsheet, corrupt, encrypted, empty, no header, no data rows)
    or MissingColumns; an unreadable cell becomes NA and a Problem (bad_date, bad_number)."""
    settings = settings or _default_settings()
    columns = columns or default_column_config()
    table = read_table(data, filename, header_lookup(columns), max_mb=settings["upload.max_mb"],
                       settings=settings)
    mapping, problems = _map_header(table, columns, filename)
    _require(mapping, columns, table, filename)
    if table.body.empty:
        raise UnreadableFile(filename, f"the header is on row {table.header_row} but there are no "
                             "data rows below it; add the colors and upload again",
                             sheet=table.sheet)
    frame, unreadable, cell_problems = _build_frame(table, mapping, columns, filename)
    frame = derive_fields(frame, settings)
    for column, positions in unreadable.items():  # a bad PX stays blank, not derived from BID
        frame.loc[positions, column] = pd.NA
    log.info("read %s: %d rows, %d problems", filename, len(frame), len(cell_problems))
    return RawBatch(frame, problems + cell_problems, filename, table.sheet)


def read_many(
    files: Sequence[tuple[str, bytes]],
    *,
    columns: list[ColumnSpec] | None = None,
    settings: Settings | None = None,
) -> list[RawBatch]:
    """read_colors for each (filename, bytes); the first whole-file problem raises."""
    return [read_colors(data, name, columns=columns, settings=settings) for name, data in files]


def _map_header(table: RawTable, columns: list[ColumnSpec], filename: str
                ) -> tuple[dict[str, int], list[Problem]]:
    """canonical column → body column; the first of two headers naming one column wins."""
    lookup = header_lookup(columns)
    known = set(INPUT_COLUMNS) | {c.name for c in columns if c.custom}
    mapping: dict[str, int] = {}
    problems: list[Problem] = []
    for i, cell in enumerate(table.header):
        name = lookup.get(normalise_header(cell)) if cell else None
        if name is None or name not in known:
            continue
        if name in mapping:
            first = table.header[mapping[name]]
            problems.append(Problem(
                filename, table.sheet, None, name, "duplicate_column",
                cell_message(None, name, f"headers {first!r} and {cell!r} both name this column; "
                             f"the first one is used"), False))
            continue
        mapping[name] = i
    return mapping, problems


def _present(name: str, mapped: dict[str, int]) -> bool:
    """In the file, or derivable from columns that are (schema.DERIVABLE, recursively)."""
    if name in mapped:
        return True
    sources = DERIVABLE.get(name, ())
    return bool(sources) and all(_present(s, mapped) for s in sources)


def _require(mapping: dict[str, int], columns: list[ColumnSpec], table: RawTable,
             filename: str) -> None:
    missing = [c.name for c in columns if c.required and not _present(c.name, mapping)]
    if missing:
        raise MissingColumns(filename, missing, [h for h in table.header if h],
                             sheet=table.sheet)


def _build_frame(table: RawTable, mapping: dict[str, int], columns: list[ColumnSpec],
                 filename: str) -> tuple[pd.DataFrame, dict[str, np.ndarray], list[Problem]]:
    """Typed columns in canonical order, the positions of unreadable cells, and the problems."""
    n = len(table.body)
    rows = table.rows.tolist()
    kinds = {c: COLUMN_TYPE[c] for c in INPUT_COLUMNS}
    kinds |= {c.name: c.type for c in columns if c.custom and c.name not in kinds}
    data: dict[str, pd.Series] = {}
    unreadable: dict[str, np.ndarray] = {}
    problems: list[Problem] = []
    index = pd.RangeIndex(n)
    given = [(name, kind) for name, kind in kinds.items() if name in mapping]
    raw = {name: table.body[mapping[name]] for name, _ in given}
    # Columns are coerced on two threads: most of the work is Arrow compute, which lets go of
    # the GIL (1M rows: 0.85 s of CPU).
    with ThreadPoolExecutor(max_workers=_COERCE_THREADS) as pool:
        coerced = dict(zip(raw, pool.map(lambda item: coerce_column(raw[item[0]], *item), given),
                           strict=True))
    for name, kind in kinds.items():
        if name not in mapping:
            data[name] = pd.Series(pd.NA, index=index, dtype=PANDAS_DTYPES[kind])
            continue
        data[name], bad_cells = coerced[name]
        for bad in bad_cells:
            if bad.blocking:
                unreadable[name] = np.union1d(unreadable.get(name, []), bad.positions)
            for pos, text in zip(bad.positions.tolist(), bad.messages(), strict=True):
                problems.append(Problem(filename, table.sheet, rows[pos], name, bad.code,
                                        cell_message(rows[pos], name, text), bad.blocking))
    same = np.zeros(n, dtype=np.int8)
    data[SOURCE_FILE] = text_from_codes(same, [filename], index)
    data[SOURCE_SHEET] = text_from_codes(same, [table.sheet], index)
    data[SOURCE_ROW] = pd.Series(table.rows, index=index, dtype="Int64")
    problems.sort(key=lambda p: p.row or 0)
    return pd.DataFrame(data), {k: v.astype(int) for k, v in unreadable.items()}, problems


def derive_fields(frame: pd.DataFrame, settings: Settings | None = None) -> pd.DataFrame:
    """Fill the blank derived fields of a canonical frame; given values are never changed.

    RANK from BIAS (BIAS_RANK); PX = BID if BID > 0 else ASK; PRICE_LEVEL = PX;
    PERCENT_DIFF = round(|PX − COV| / COV × 100, 2), NA when COV is NA or 0; PRICE_DIFF = PX − COV;
    DIFF_STATUS = "Significant Difference" when PERCENT_DIFF > the threshold
    (diff.equity_threshold_pct for diff.equity_sectors, else diff.threshold_pct), else
    "Small Difference". BID/ASK are left as given (blank stays blank; 0 means no bid/offer)."""
    settings = settings or _default_settings()
    out = frame.copy(deep=False)  # columns are replaced, never written in place: no row copied
    rank = normalise_bias(out[BIAS].astype("string")).map(BIAS_RANK).astype("Int64")
    out[RANK] = out[RANK].astype("Int64").fillna(rank)
    bid, ask = out[BID].astype("Float64"), out[ASK].astype("Float64")
    out[PX] = out[PX].astype("Float64").fillna(bid.where((bid > 0).fillna(False), ask))
    out[PRICE_LEVEL] = out[PRICE_LEVEL].astype("Float64").fillna(out[PX])
    px, cov = out[PX], out[COV_PRICE].astype("Float64")
    usable = (cov != 0).fillna(False)
    percent = ((px - cov).abs() / cov.where(usable) * 100).round(2)
    out[PERCENT_DIFF] = out[PERCENT_DIFF].astype("Float64").fillna(percent)
    difference = (px - cov).round(PRICE_DIFF_DECIMALS)
    out[PRICE_DIFF] = out[PRICE_DIFF].astype("Float64").fillna(difference)
    equity = [s.strip() for s in str(settings["diff.equity_sectors"]).split(",") if s.strip()]
    threshold = np.where(out[SECTOR].isin(equity).fillna(False).to_numpy(dtype=bool),
                         settings["diff.equity_threshold_pct"], settings["diff.threshold_pct"])
    significant = (out[PERCENT_DIFF] > threshold).fillna(False).to_numpy(dtype=np.int8)
    status = text_from_codes(significant, [SMALL, SIGNIFICANT], out.index)
    given = out[DIFF_STATUS].astype("string")
    out[DIFF_STATUS] = given.mask(given.isna() | given.str.strip().eq("").fillna(True), status)
    return out
