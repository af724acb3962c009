"""Search and dashboard benchmark over 10M published rows (DESIGN.md §7).

    .venv/bin/python bench/search.py                      # 100 runs × 100k rows, 20k CUSIPs
    .venv/bin/python bench/search.py --keep /tmp/mp-bench # build once, reuse on the next runs
    .venv/bin/python bench/search.py --runs 10            # a quick 1M-row version
    .venv/bin/python bench/search.py --store s3://bucket/bench --keep /tmp/mp-s3  # another store

Builds the rows straight into a local store (generated, ranked, one partition per run, success run
records), then measures each query kind in its own process on four layouts: per-run partitions as
published ("raw"), after `python -m core compact` ("compact"), with two newer 100k-row runs just
published ("fresh"), and once the scheduler's next step put them in the copy's delta ("steady",
what searches read between publishes). Cold = the first call in a fresh process (DuckDB opened,
no metadata cached); warm = later calls with other ids; cached = a Streamlit cache hit (unpickling
the cached value). Budgets: CUSIP lookup p50 ≤ 50 ms; dashboard ≤ 500 ms cold, ≤ 50 ms cached;
peak RSS ≤ 1.5 GB. Wall times depend on what else the box runs: the load average is printed, and
CPU time beside wall time.

--store URL builds into and reads from that store instead (s3://…, with s3.* settings from the
environment, e.g. MARKETPULSE_S3_ENDPOINT_URL for moto or MinIO, and AWS_* or MARKETPULSE_S3_*
credentials); it must start empty, and --keep then only remembers that it was built.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BUDGET_LOOKUP_P50_MS = 50
BUDGET_DASHBOARD_COLD_MS = 500
BUDGET_CACHED_MS = 50
BUDGET_RSS_MB = 1536
STACK_REFERENCE_MS = 10.0  # STACK.md §5 (a): exact CUSIP lookup, one sorted 5M-row file
KINDS = ("lookup", "ticker", "bulk500", "security", "dashboard")
REFERENCE_MS = STACK_REFERENCE_MS  # the reference lookup's p50 on this box now (see reference)
STORE_URL = ""  # --store: the store measured; "" = a local store in <root>/store


def _store_url(root: Path) -> str:
    return STORE_URL or str(root / "store")


def _open(url: str):
    """The store at url, with the s3.* settings of the environment (endpoint, keys, cache)."""
    from core.config import load_settings, store_options
    from storage import open_store

    return open_store(url, store_options(load_settings({}, os.environ)))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


_WORKER_STORES: dict = {}  # url → the store a build worker opened (one pool of connections each)


def _build_run(job: tuple[str, int, str, int, int]) -> tuple[int, int]:
    """Generate, rank and store one run (a worker process); returns (run id, parents)."""
    import numpy as np
    import pandas as pd

    from core.cli.demo import generate_colors
    from core.config import load_settings
    from core.runs import records as runs
    from core.runs.exports import output_columns
    from core.runs.pipeline import assign_color_ids, rank_batch
    from core.schema import IS_PARENT, POSITION, PROCESSED_AT, PROCESSING_TYPE, RUN_ID
    from storage.run_tables import run_tables

    url, run_id, day, rows, cusips = job
    frame = assign_color_ids(generate_colors(rows, seed=7, date=day, cusips=cusips), run_id)
    ranked, _ = rank_batch(frame, [], load_settings({}, {}))
    ranked = ranked.copy()
    ranked[RUN_ID] = pd.array(np.full(len(ranked), run_id), dtype="Int64")
    ranked[PROCESSED_AT] = pd.Timestamp(f"{day}T18:00:00+00:00")
    ranked[PROCESSING_TYPE] = pd.array(["AUTOMATED"] * len(ranked), dtype="string")
    ranked[POSITION] = pd.array(np.arange(1, len(ranked) + 1), dtype="Int64")
    if url not in _WORKER_STORES:  # a store per run left a SQL store's connections open (100+)
        _WORKER_STORES[url] = _open(url)
    run_tables(_WORKER_STORES[url]).append_run(
        run_id, {runs.COLORS_TABLE: ranked[[*output_columns(ranked), POSITION]]})
    return run_id, int(ranked[IS_PARENT].sum())


def build(root: Path, n_runs: int, rows: int, cusips: int) -> float:
    """Write n_runs ranked runs of `rows` generated colors, one worker per core (unless root
    already holds them), then their success run records."""
    from concurrent.futures import ProcessPoolExecutor

    import numpy as np

    from core.runs import records as runs

    params = {"runs": n_runs, "rows": rows, "cusips": cusips, "format": 2, "store": STORE_URL}
    meta = root / "bench.json"
    if meta.exists() and json.loads(meta.read_text()) == params:
        return 0.0
    store = _open(_store_url(root))
    if (root / "store").exists() or store.list("runs/"):
        raise SystemExit(f"{_store_url(root)} holds another build; remove it or use another one")
    started = time.perf_counter()
    days = [str(d) for d in np.busday_offset(np.datetime64("2026-01-05"), np.arange(n_runs),
                                             roll="forward")]
    jobs = [(_store_url(root), runs.next_run_id(store), day, rows, cusips) for day in days]
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        parents = dict(pool.map(_build_run, jobs))
    _record_runs(store, jobs, parents)
    meta.write_text(json.dumps(params))
    return time.perf_counter() - started


def _record_runs(store, jobs: list[tuple], parents: dict[int, int]) -> None:
    """Success run records for built runs (this makes them visible), then the new data version."""
    from core.runs import records as runs

    for _, run_id, day, rows, _ in jobs:
        at = datetime.fromisoformat(f"{day}T18:00:00+00:00")
        runs.save_run(store, runs.RunRecord(
            run_id, "AUTOMATED", "bench", "system", status=runs.SUCCESS,
            started_at=at.isoformat(), finished_at=(at + timedelta(seconds=9)).isoformat(),
            duration_s=9.0, counts={"read": rows, "quarantined": 0, "excluded": 0,
                                    "published": rows, "parents": parents[run_id],
                                    "children": rows - parents[run_id]},
            quality_score=100.0))
    runs.bump_data_version(store)


def newest_runs(root: Path, action: str, count: int, rows: int, cusips: int) -> dict:
    """Runs published after the compacted copy: add `count` of them (read from their own files
    until the scheduler's next step puts them in the copy's delta), or remove them and the delta
    again (so a reused build starts from the full copy)."""
    from core.runs import records as runs
    from storage.parquet_layout import (
        COMPACT_TABLE,
        LATEST_TABLE,
        MANIFEST_KEY,
        ROLLUP_TABLE,
        load_manifest,
    )
    from storage.run_tables import run_tables

    store = _open(_store_url(root))
    added = root / "newest.json"
    if action == "remove":
        manifest, version = load_manifest(store)
        if manifest and manifest.get("delta"):
            store.put(MANIFEST_KEY, {k: v for k, v in manifest.items() if k != "delta"}, version)
            for table in (COMPACT_TABLE, ROLLUP_TABLE, LATEST_TABLE):
                store.delete_partition(table, manifest["delta"]["partition"])
        for run_id in json.loads(added.read_text()) if added.exists() else []:
            run_tables(store).remove_run(run_id)
            store.delete(runs.run_key(run_id))
        runs.bump_data_version(store)
        added.unlink(missing_ok=True)
        return {"removed": True}
    last = datetime.fromisoformat(runs.load_runs(store, limit=1)[0].started_at)
    jobs = [(_store_url(root), runs.next_run_id(store), str((last + timedelta(days=k)).date()),
             rows, cusips) for k in range(1, count + 1)]
    added.write_text(json.dumps([job[1] for job in jobs]))
    parents = dict(_build_run(job) for job in jobs)
    _record_runs(store, jobs, parents)
    return {"added": [job[1] for job in jobs]}


def reference(root: Path) -> dict:
    """STACK.md §5 (a) on this box now: an exact CUSIP lookup on one CUSIP-sorted 5M-row Parquet
    file (DuckDB's default row groups), to pandas, which measured 10 ms there. Search timings are
    also printed as ratios to it, which move less than wall times when other work loads the box."""
    import duckdb

    from core.runs import records as runs
    from storage.run_tables import run_tables

    path = root / "reference.parquet"
    store = _open(_store_url(root))
    con = duckdb.connect(config={"memory_limit": "1GB"})
    if not path.exists():
        visible = runs.visible_run_ids(store)
        half = visible[: max(1, len(visible) // 2)]
        src = run_tables(store).open(con, runs.COLORS_TABLE, half)
        columns = ", ".join(["MESSAGE_ID", "TICKER", "SECTOR", "CUSIP", "DATE", "PRICE_LEVEL",
                             "BID", "ASK", "PX", "SOURCE", "BIAS", "RANK", "COV_PRICE",
                             "PERCENT_DIFF", "PRICE_DIFF", "CONFIDENCE", "DATE_1", "DIFF_STATUS"])
        temp = str(path) + ".tmp"
        con.execute(f"COPY (SELECT {columns} FROM {src} ORDER BY CUSIP, DATE) TO '{temp}' "
                    "(FORMAT parquet, COMPRESSION zstd)")
        os.replace(temp, path)
    cusips = [r[0] for r in con.execute(
        f"SELECT DISTINCT CUSIP FROM read_parquet('{path}') ORDER BY hash(CUSIP) LIMIT 20"
    ).fetchall()]
    walls = [_time(lambda c=c: con.execute(
        f"SELECT * FROM read_parquet('{path}') WHERE CUSIP = ?", [c]).df())[0] for c in cusips]
    p50 = statistics.median(walls[1:])
    return {"p50_ms": round(p50, 1), "peak_mb": round(_peak_mb())}


# -- one query kind in its own process -------------------------------------------------------------
def _samples(store, count: int) -> tuple[list[str], list[str], datetime]:
    from core.runs import records as runs
    from storage.run_tables import run_tables

    last = runs.load_runs(store, limit=1)[0]
    frame = run_tables(store).read(runs.COLORS_TABLE, [last.run_id], ["CUSIP", "TICKER"])
    cusips = frame["CUSIP"].drop_duplicates().sample(frac=1, random_state=3).tolist()[:count]
    tickers = frame["TICKER"].str.rsplit(" ", n=1).str[0].drop_duplicates()
    now = datetime.fromisoformat(last.started_at) + timedelta(hours=1)
    return cusips, tickers.sample(frac=1, random_state=5).tolist()[:count], now


def _time(call) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    value = call()
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000, value


def child(kind: str, root: Path, layout: str, repeat: int) -> dict:
    from core.access import SYSTEM
    from core.reads.dashboard import DashboardFilters, dashboard_data
    from core.reads.identifiers import classify
    from core.reads.search import SearchQuery, search_colors
    from core.reads.security_page import security_history, security_summary
    from storage import parquet_layout

    if layout == "raw":  # read every run from its own partition, as before any compaction
        parquet_layout.load_manifest = lambda store: (None, None)
    store = _open(_store_url(root))
    cusips, tickers, now = _samples(store, 600 + repeat * 500)
    calls = {
        "lookup": lambda i: search_colors(store, SYSTEM, SearchQuery(text=cusips[i])).total_rows,
        "ticker": lambda i: search_colors(store, SYSTEM, SearchQuery(text=tickers[i])).total_rows,
        "bulk500": lambda i: search_colors(store, SYSTEM, SearchQuery(
            bulk=tuple(classify(c) for c in cusips[i * 500:(i + 1) * 500]))).total_rows,
        "security": lambda i: len(security_history(store, SYSTEM, cusips[i]))
        + security_summary(store, SYSTEM, cusips[i]).colors,
        "dashboard": lambda i: dashboard_data(store, SYSTEM, DashboardFilters(
            cusips=tuple(cusips[i * 5:(i + 1) * 5])), now),
    }
    cold, _, value = _time(lambda: calls[kind](0))
    walls, cpus = [], []
    for i in range(1, repeat + 1):
        wall, cpu, value = _time(lambda i=i: calls[kind](i))
        walls.append(wall)
        cpus.append(cpu)
    result = {"kind": kind, "layout": layout, "cold_ms": round(cold),
              "p50_ms": round(statistics.median(walls)),
              "p95_ms": round(sorted(walls)[max(0, round(len(walls) * 0.95) - 1)]),
              "cpu_p50_ms": round(statistics.median(cpus)), "peak_mb": round(_peak_mb())}
    if kind == "dashboard":
        blob = pickle.dumps(value)
        hits = [_time(lambda: pickle.loads(blob))[0] for _ in range(20)]
        result["cached_ms"] = round(statistics.median(hits), 2)
    else:
        result["rows"] = value
    return result


def compact_child(root: Path) -> dict:
    from core.reads.compaction import compact_colors

    report = compact_colors(_open(_store_url(root)))
    return {**report.to_dict(), "peak_mb": round(_peak_mb())}


def _run(args: list[str]) -> dict:
    store = ["--store", STORE_URL] if STORE_URL else []
    out = subprocess.run([sys.executable, __file__, *store, "--child", *args],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1], "args": args}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _verdict(result: dict) -> str:
    """Budget checks on the wall times measured."""
    checks = []
    if result["kind"] == "lookup":
        checks.append(("p50", result["p50_ms"], BUDGET_LOOKUP_P50_MS))
    if result["kind"] == "dashboard":
        checks.append(("cold", result["cold_ms"], BUDGET_DASHBOARD_COLD_MS))
        checks.append(("cached", result["cached_ms"], BUDGET_CACHED_MS))
    words = [f"{name} {'OK' if ms <= budget else 'OVER'}" for name, ms, budget in checks]
    words.append(f"rss {'OK' if result['peak_mb'] <= BUDGET_RSS_MB else 'OVER'}")
    return " ".join(words)


def _print(result: dict) -> None:
    if "error" in result:
        print(f"  {' '.join(result['args'][:3]):<28} FAILED: {result['error']}")
        return
    extra = (f"cached {result['cached_ms']:>6.2f} ms" if "cached_ms" in result
             else f"rows {result['rows']:>9,}")
    print(f"  {result['layout']:<8}{result['kind']:<10} cold {result['cold_ms']:>6} ms  "
          f"warm p50 {result['p50_ms']:>6} ms  p95 {result['p95_ms']:>6} ms  "
          f"cpu p50 {result['cpu_p50_ms']:>6} ms  {extra}  peak {result['peak_mb']:>5} MB  "
          f"×ref {result['p50_ms'] / REFERENCE_MS:>5.2f}  {_verdict(result)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--cusips", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=20, help="warm calls per kind (compact)")
    parser.add_argument("--keep", type=Path, help="build here and reuse it next time")
    parser.add_argument("--skip-raw", action="store_true", help="measure the compacted layout only")
    parser.add_argument("--store", default="", help="measure this store (s3://…); it must be "
                        "empty the first time")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global STORE_URL
    STORE_URL = args.store
    if args.child:
        kind, root, *rest = args.child
        if kind in ("compact", "reference"):
            result = (compact_child if kind == "compact" else reference)(Path(root))
        elif kind == "newest":
            result = newest_runs(Path(root), rest[0], 2, args.rows, args.cusips)
        else:
            result = child(kind, Path(root), rest[0], int(rest[1]))
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        total = args.runs * args.rows
        print(f"MarketPulse search benchmark: {args.runs} runs × {args.rows:,} rows = {total:,} "
              f"rows, {args.cusips:,} CUSIPs, {os.cpu_count()} cores, load average "
              f"{os.getloadavg()[0]:.1f}, store {_store_url(root)}", flush=True)
        built = build(root, args.runs, args.rows, args.cusips)
        print(f"build: {'reused ' + str(root) if not built else f'{built:.0f} s'}", flush=True)
        ref = _run(["reference", str(root)])  # a child: a fork inherits the parent's peak RSS
        if "error" in ref:
            print(f"reference FAILED: {ref['error']}")
            return
        print(f"reference: STACK.md §5 (a), a bare DuckDB CUSIP lookup on one sorted 5M-row file "
              f"to pandas, p50 {ref['p50_ms']} ms now ({STACK_REFERENCE_MS:.0f} ms when STACK.md "
              "was measured); ×ref below is each p50 over it", flush=True)
        global REFERENCE_MS
        REFERENCE_MS = ref["p50_ms"]
        if not args.skip_raw:
            for kind in KINDS:
                _print(_run([kind, str(root), "raw", str(min(args.repeat, 3))]))
        report = _run(["compact", str(root)])
        if "error" in report:
            print(f"compact FAILED: {report['error']}")
            return
        print(f"compact: {report['reason']}; " + (
            f"{report['rows']:,} rows into {report['files']} files in {report['seconds']:.0f} s, "
            f"peak {report['peak_mb']} MB" if report["done"] else "nothing to do"), flush=True)
        for kind in KINDS:
            _print(_run([kind, str(root), "compact", str(args.repeat)]))
        added = _run(["newest", str(root), "add"])
        if "error" in added:
            print(f"newest runs FAILED: {added['error']}")
            return
        print(f"fresh: the compacted copy plus runs {added['added']} just published, read from "
              "their own files until the scheduler's next step", flush=True)
        try:
            for kind in KINDS:
                _print(_run([kind, str(root), "fresh", str(args.repeat)]))
            delta = _run(["compact", str(root)])
            if "error" in delta:
                print(f"delta FAILED: {delta['error']}")
                return
            print(f"steady: the scheduler's step put them in the copy's delta ({delta['mode']}): "
                  f"{delta['rows']:,} rows in {delta['seconds']:.1f} s, peak {delta['peak_mb']} MB",
                  flush=True)
            for kind in KINDS:
                _print(_run([kind, str(root), "steady", str(args.repeat)]))
        finally:
            _run(["newest", str(root), "remove"])
        print(f"load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
