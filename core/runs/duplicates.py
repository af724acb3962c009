"""When a color or a file was already published (DOMAIN.md §1.5): COLOR_KEY, a color's identity,
and the checks a run makes against the runs still published before it ranks its batch.

COLOR_KEY = md5 (16 bytes, 32 hex digits) of the 18 canonical input values as ingest normalised
them (core.ingest.coercion: text trimmed, CUSIP upper-cased, blanks null), written canonically:
numbers
as integer millionths (3 and 3.0 are one number; prices carry at most 4 decimals; formatting
doubles as text cost twice the CPU), dates as days since 1970, nulls as ''. It is one DuckDB
expression (`key_sql`), used both to stamp a batch at publish time (stored as the COLOR_KEY
column) and, for runs published before the column existed, to compute it from their stored
values, so old and new runs agree. Identical rows are a multiset: a batch skips, per key, as many
rows as the visible runs hold. A file's identity is the SHA-256 of its bytes, kept in the run
record's `files`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from core.errors import NotFound
from core.runs import records as runs
from core.runs.published import duckdb_session, open_colors, published_columns, visible_runs
from core.schema import (
    COLOR_KEY,
    COLUMN_TYPE,
    CUSIP,
    DATE_TYPE,
    INPUT_COLUMNS,
    INTEGER,
    NUMBER,
    RUN_ID,
    SOURCE_FILE,
)
from storage import Store

_MICRO = 1_000_000  # numbers are one when equal to 6 decimals
_SEPARATOR = "chr(31)"  # ASCII unit separator: never part of a value a file can give us


def _value_sql(column: str, present: bool) -> str:
    if not present:
        return "''"
    raw = f'"{column}"'
    kind = COLUMN_TYPE[column]
    if column == CUSIP:
        value = f"upper(trim({raw}))"
    elif kind in (NUMBER, INTEGER):
        micro = f"TRY_CAST(round(TRY_CAST({raw} AS DOUBLE) * {_MICRO}) AS BIGINT)"
        value = f"coalesce(CAST({micro} AS VARCHAR), CAST({raw} AS VARCHAR))"
    elif kind == DATE_TYPE:
        days = f"TRY_CAST({raw} AS DATE) - DATE '1970-01-01'"
        value = f"coalesce(CAST({days} AS VARCHAR), CAST({raw} AS VARCHAR))"
    else:
        value = f"CAST({raw} AS VARCHAR)"
    return f"coalesce({value}, '')"


def key_sql(columns: Sequence[str]) -> str:
    """The COLOR_KEY of a row as a DuckDB expression over a relation with these columns (an input
    column it lacks counts as blank)."""
    have = set(columns)
    parts = ", ".join(_value_sql(c, c in have) for c in INPUT_COLUMNS)
    return f"md5(concat_ws({_SEPARATOR}, {parts}))"


def color_keys(frame: pd.DataFrame) -> pd.Series:
    """The COLOR_KEY of every row of a batch (index kept)."""
    if not len(frame):
        return pd.Series([], index=frame.index, dtype="string")
    present = [c for c in INPUT_COLUMNS if c in frame.columns]
    table = pa.Table.from_pandas(frame[present], preserve_index=False)
    with duckdb_session() as con:
        con.register("batch_rows", table)
        keys = con.sql(f"SELECT {key_sql(present)} AS k FROM batch_rows").to_arrow_table()
    return pd.Series(keys.column("k").to_pandas(), index=frame.index, dtype="string")


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- colors ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FirstPlace:
    """Where colors were first published: run, file, who, when; and how many of the batch's."""

    run_id: int
    file: str
    actor: str
    at: str
    count: int

    def sentence(self) -> str:
        return (f"run {self.run_id} (file {self.file or '?'}, by {self.actor or '?'} at "
                f"{self.at[:16].replace('T', ' ')} UTC)")


@dataclass
class AlreadyPublished:
    """The rows of a batch already published by a visible run, and where each was first."""

    count: int = 0
    places: list[FirstPlace] = field(default_factory=list)
    skipped: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool), repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "first": [vars(p) for p in self.places]}

    def where(self) -> str:
        """'run R (file F, by U at T)', or '2 in run R (...); 3 in run S (...)'."""
        return "; ".join(f"{p.count} in {p.sentence()}" if len(self.places) > 1
                         else p.sentence() for p in self.places)

    def sentence(self, verb: str = "skipped") -> str:
        """'N colors skipped: already published in run R (file F, by U at T); ...'."""
        if not self.count:
            return ""
        return f"{self.count} colors {verb}: already published in {self.where()}"


def summary_sentence(already: dict[str, Any], republished: bool = False) -> str:
    """The sentence of a run record's `already_published` entry ('' when none)."""
    places = [FirstPlace(**p) for p in already.get("first", [])]
    found = AlreadyPublished(int(already.get("count", 0)), places)
    return found.sentence("published again" if republished else "skipped")


def find_published(store: Store, batch: pd.DataFrame, keys: pd.Series) -> AlreadyPublished:
    """Which rows of the batch (keys: their COLOR_KEY) a visible run already holds: per key, the
    first rows of the batch up to the number published (a multiset), with their first place.
    One DuckDB semi-join of the visible runs' rows of the batch's CUSIPs against the keys."""
    none = AlreadyPublished(0, [], np.zeros(len(batch), dtype=bool))
    if not len(batch):
        return none
    visible = visible_runs(store)
    if not visible:
        return none
    cusips = batch[CUSIP].dropna().astype(str).unique().tolist()
    numbered = pa.table({"k": pa.Array.from_pandas(keys.reset_index(drop=True)),
                         "i": pa.array(np.arange(len(keys)))})
    with duckdb_session() as con:
        src = open_colors(store, con, visible, cusips=cusips)
        if src is None:
            return none
        names = [n for n, _ in published_columns(store, con, src, visible)]
        file = SOURCE_FILE if SOURCE_FILE in names else "NULL"

        def rows(key: str) -> str:
            return (f"SELECT {key} AS k, {RUN_ID}, {file} AS f FROM {src} AS published "
                    "WHERE CUSIP IN (SELECT c FROM batch_cusips)")

        computed = rows(key_sql(names))
        if COLOR_KEY in names:  # computed only for runs published before COLOR_KEY existed
            # (two branches: DuckDB evaluates both sides of a coalesce or CASE on every row)
            computed = (f"{rows(COLOR_KEY)} AND {COLOR_KEY} IS NOT NULL "
                        f"UNION ALL {computed} AND {COLOR_KEY} IS NULL")
        con.register("batch_cusips", pa.table({"c": pa.array(cusips, pa.string())}))
        con.register("batch_rows", numbered)
        # The batch's rows whose key is published: n copies, first in run/file.
        hits = con.sql(
            f"WITH held AS (SELECT k, count(*) AS n, min({RUN_ID}) AS run, "
            f"arg_min(f, {RUN_ID}) AS file FROM ({computed}) "
            "WHERE k IN (SELECT k FROM batch_rows) GROUP BY k) "
            "SELECT b.i, b.k, h.n, h.run, h.file FROM batch_rows AS b JOIN held AS h "
            "ON b.k = h.k ORDER BY b.i").df()
    if not len(hits):
        return none
    # A multiset: per key, the batch's first n rows (n = copies published) are skipped.
    hits = hits[hits.groupby("k", sort=False).cumcount().to_numpy() < hits["n"].to_numpy()]
    skipped = np.zeros(len(batch), dtype=bool)
    skipped[hits["i"].to_numpy()] = True
    where = hits.groupby(["run", "file"], dropna=False, sort=True).size()
    places = []
    for (run_id, name), count in where.items():
        record = runs.get_run(store, int(run_id))
        if pd.isna(name):  # a row without SOURCE_FILE: the files the run read
            name = ", ".join(str(f.get("name")) for f in record.files if not f.get("skipped"))
        places.append(FirstPlace(int(run_id), str(name), record.actor,
                                 record.finished_at or record.started_at, int(count)))
    return AlreadyPublished(int(skipped.sum()), places, skipped)


# -- files -----------------------------------------------------------------------------------------
def published_files(store: Store) -> dict[str, tuple[int, str]]:
    """SHA-256 → (run, file name) of the files the visible runs published whole (the first run
    when several did). A manual session's files list no SHA-256: their rows may have been edited."""
    found: dict[str, tuple[int, str]] = {}
    for record in sorted(runs.load_runs(store), key=lambda r: r.run_id):
        if record.status != runs.SUCCESS:
            continue
        for meta in record.files:
            sha = meta.get("sha256")
            if sha and not meta.get("skipped"):
                found.setdefault(str(sha), (record.run_id, str(meta.get("name", ""))))
    return found


def skip_published_files(store: Store, files: Sequence[tuple[str, bytes]], shas: Sequence[str]
                         ) -> tuple[list[int], list[dict[str, Any]]]:
    """Positions of the files to read (shas: each file's file_sha256), and a record entry (name,
    sha256, rows 0, skipped: the note) for each file identical to one a visible run published,
    or to an earlier file of this batch."""
    published = published_files(store)
    seen: dict[str, str] = {}
    kept: list[int] = []
    skipped: list[dict[str, Any]] = []
    for at, ((name, _), sha) in enumerate(zip(files, shas, strict=True)):
        if sha in published:
            run_id, first = published[sha]
            note = f"identical to {first}, already published in run {run_id}"
        elif sha in seen:
            note = f"identical to {seen[sha]} of this run"
        else:
            seen[sha] = name
            kept.append(at)
            continue
        skipped.append({"name": name, "sha256": sha, "rows": 0, "skipped": note})
    return kept, skipped


def skipped_files(store: Store, run_id: int) -> dict[str, str]:
    """File name → note of the files a run skipped as already published (none for a run
    without a record)."""
    try:
        files = runs.get_run(store, run_id).files
    except NotFound:
        return {}
    return {str(f["name"]): str(f["skipped"]) for f in files if f.get("skipped")}


def run_notes(record: runs.RunRecord) -> list[str]:
    """What a run record says about duplicates: the colors skipped (or published again) and each
    file skipped whole."""
    notes = [f"file {f['name']} skipped: {f['skipped']}" for f in record.files if f.get("skipped")]
    colors = summary_sentence(record.already_published, record.republished)
    return ([colors] if colors else []) + notes
