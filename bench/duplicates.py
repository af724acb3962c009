"""Already-published check (core.runs.duplicates) of a 1M-row run over a 10M-row history.

    .venv/bin/python bench/duplicates.py --keep /tmp/mp-dup-bench            # 100 runs × 100k
    .venv/bin/python bench/duplicates.py --keep /tmp/mp-dup-bench --runs 10  # a quick 1M version
    .venv/bin/python bench/duplicates.py ... --legacy  # history without COLOR_KEY (computed)

Builds ranked runs straight into a local store (like bench/search.py, with COLOR_KEY unless
--legacy), then times, for a batch of 1M rows of which the first run's 100k are an exact copy:
COLOR_KEY of the batch, and find_published on the per-run layout and after compaction. Prints
seconds, rows found (expect the copied run's rows) and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CUSIPS = 20_000


def _day(number: int) -> str:
    import numpy as np

    return str(np.busday_offset(np.datetime64("2026-01-05"), number, roll="forward"))


def _run_rows(run_id: int, rows: int):
    from core.cli.demo import generate_colors

    return generate_colors(rows, seed=7, date=_day(run_id), cusips=CUSIPS)


def _build_run(job: tuple[str, int, int, bool]) -> int:
    import numpy as np
    import pandas as pd

    from core.config import load_settings
    from core.runs import records as runs
    from core.runs.duplicates import color_keys
    from core.runs.exports import output_columns
    from core.runs.pipeline import assign_color_ids, rank_batch
    from core.schema import COLOR_KEY, POSITION, PROCESSED_AT, PROCESSING_TYPE, RUN_ID
    from storage import open_store
    from storage.run_tables import run_tables

    root, run_id, rows, legacy = job
    ranked, _ = rank_batch(assign_color_ids(_run_rows(run_id, rows), run_id), [],
                           load_settings({}, {}))
    ranked = ranked.copy()
    ranked[RUN_ID] = pd.array(np.full(len(ranked), run_id), dtype="Int64")
    ranked[PROCESSED_AT] = pd.Timestamp(f"{_day(run_id)}T18:00:00+00:00")
    ranked[PROCESSING_TYPE] = pd.array(["AUTOMATED"] * len(ranked), dtype="string")
    ranked[POSITION] = pd.array(np.arange(1, len(ranked) + 1), dtype="Int64")
    columns = [*output_columns(ranked), POSITION]
    if not legacy:
        ranked[COLOR_KEY] = color_keys(ranked)
        columns.append(COLOR_KEY)
    run_tables(open_store(root)).append_run(run_id, {runs.COLORS_TABLE: ranked[columns]})
    return run_id


def build(root: Path, n_runs: int, rows: int, legacy: bool) -> float:
    from core.runs import records as runs
    from storage import open_store

    params = {"runs": n_runs, "rows": rows, "legacy": legacy}
    meta = root / "bench.json"
    if meta.exists() and json.loads(meta.read_text()) == params:
        return 0.0
    if (root / "store").exists():
        raise SystemExit(f"{root}/store holds another build; remove it or use another --keep")
    started = time.perf_counter()
    store = open_store(str(root / "store"))
    jobs = [(str(root / "store"), runs.next_run_id(store), rows, legacy) for _ in range(n_runs)]
    with ProcessPoolExecutor(max_workers=2) as pool:
        list(pool.map(_build_run, jobs))
    for _, run_id, _, _ in jobs:
        at = datetime.fromisoformat(f"{_day(run_id)}T18:00:00+00:00")
        runs.save_run(store, runs.RunRecord(
            run_id, "AUTOMATED", "bench", "system", status=runs.SUCCESS,
            started_at=at.isoformat(), finished_at=(at + timedelta(seconds=9)).isoformat(),
            files=[{"name": f"run-{run_id}.xlsx", "rows": rows}],
            counts={"read": rows, "published": rows}))
    runs.bump_data_version(store)
    meta.write_text(json.dumps(params))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", type=Path, required=True, help="folder of the built history")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1_000_000)
    parser.add_argument("--legacy", action="store_true", help="history without COLOR_KEY")
    args = parser.parse_args()

    import pandas as pd

    from core.cli.demo import generate_colors
    from core.reads.compaction import compact_colors
    from core.runs.duplicates import color_keys, find_published
    from storage import open_store

    args.keep.mkdir(parents=True, exist_ok=True)
    built = build(args.keep, args.runs, args.rows, args.legacy)
    print(f"history: {args.runs} runs × {args.rows:,} rows"
          f"{' (legacy: no COLOR_KEY)' if args.legacy else ''}; built in {built:.1f} s")
    store = open_store(str(args.keep / "store"))
    fresh = generate_colors(args.batch - args.rows, seed=99, date=_day(args.runs + 5),
                            cusips=CUSIPS)
    batch = pd.concat([_run_rows(1, args.rows), fresh], ignore_index=True)

    started = time.perf_counter()
    keys = color_keys(batch)
    print(f"COLOR_KEY of {len(batch):,} rows: {time.perf_counter() - started:.2f} s")
    for layout in ("per-run", "compacted"):
        if layout == "compacted":
            started = time.perf_counter()
            compact_colors(store, force=True)
            print(f"compaction: {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        found = find_published(store, batch, keys)
        print(f"find_published ({layout}): {time.perf_counter() - started:.2f} s, "
              f"{found.count:,} already published ({found.where()})")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
