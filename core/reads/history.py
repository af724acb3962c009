"""Reads of the history store: published, excluded and quarantined rows of visible runs, always
filtered by the reader's entitlements (sectors, column profile)."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from core.access import VIEW, Actor, entitled_columns, entitled_rows, require
from core.access_events import log_export
from core.errors import InvalidInput
from core.runs import records as runs
from core.runs.exports import write_csv, write_parquet, write_xlsx
from core.schema import IS_PARENT, POSITION, RUN_ID
from storage import Store
from storage.run_tables import run_tables


def _visible(store: Store, run_ids: Iterable[int] | None) -> list[int]:
    visible = set(runs.visible_run_ids(store))
    return sorted(visible if run_ids is None else visible & set(run_ids))


def load_rows(
    store: Store, actor: Actor, table: str = runs.COLORS_TABLE, *,
    run_ids: Iterable[int] | None = None,
) -> pd.DataFrame:
    """Rows of `table` from visible runs (all, or the given ones) that the actor may see."""
    require(actor, VIEW)
    frame = run_tables(store).read(table, _visible(store, run_ids))
    if frame.empty:
        return pd.DataFrame()
    return entitled_columns(entitled_rows(frame, actor), actor).reset_index(drop=True)


def published_colors(
    store: Store, actor: Actor, *, run_ids: Iterable[int] | None = None
) -> pd.DataFrame:
    """Published colors of visible runs, newest run first, each run in ranked order."""
    frame = load_rows(store, actor, runs.COLORS_TABLE, run_ids=run_ids)
    if frame.empty:
        return frame
    order = [RUN_ID, POSITION] if POSITION in frame.columns else [RUN_ID]
    ranked = frame.sort_values(order, ascending=[False, True][: len(order)], kind="stable")
    return ranked.reset_index(drop=True)


def latest_run(store: Store) -> runs.RunRecord | None:
    """The newest successful run, or None."""
    for record in runs.load_runs(store):
        if record.status == runs.SUCCESS:
            return record
    return None


def run_summary(store: Store, actor: Actor, run_id: int) -> dict[str, object]:
    """Counts of one run as this actor may see them, plus its published rows under "colors"."""
    colors = published_colors(store, actor, run_ids=[run_id])
    excluded = load_rows(store, actor, runs.EXCLUDED_TABLE, run_ids=[run_id])
    quarantined = load_rows(store, actor, runs.QUARANTINED_TABLE, run_ids=[run_id])
    parents = int(colors[IS_PARENT].sum()) if len(colors) else 0
    return {"published": len(colors), "parents": parents, "excluded": len(excluded),
            "quarantined": len(quarantined), "colors": colors}


def export_colors(store: Store, actor: Actor, fmt: str, *, run_ids: Iterable[int] | None = None
                  ) -> tuple[bytes, int]:
    """published_colors (of every visible run, or these) as .xlsx, .csv or .parquet bytes and
    their row count; the export is logged."""
    writers = {"xlsx": write_xlsx, "csv": write_csv, "parquet": write_parquet}
    if fmt not in writers:
        raise InvalidInput("format", f"use one of {', '.join(writers)}")
    frame = published_colors(store, actor, run_ids=run_ids)
    chosen = "all runs" if run_ids is None else "runs " + ", ".join(map(str, sorted(run_ids)))
    data = writers[fmt](frame)
    log_export(store, actor, f"published colors ({chosen})", fmt, len(frame))
    return data, len(frame)

