"""Pipeline benchmark: per-stage time, rows/s and peak memory for generated CSV and xlsx inputs.

    .venv/bin/python bench/pipeline.py            # all scenarios
    .venv/bin/python bench/pipeline.py --quick    # 100k only

Each scenario runs in its own process so its peak RSS is its own. Budgets (DESIGN.md §7): rules +
ranking of 1M rows ≤ 1 s; a 100k-row xlsx end to end (in → published + output xlsx) ≤ 15 s;
peak RSS ≤ 1.5 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BUDGET_RULES_RANK_1M = 1.0
BUDGET_XLSX_100K = 15.0
BUDGET_RSS_MB = 1536


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _bench_rules() -> list:
    """Three realistic exclusion rules, as a desk would have them."""
    from core.rules.exclusion import Condition, Group, Rule

    return [
        Rule(name="No DZ", conditions=Group("or", [Condition("SOURCE", "equal_to", "DZ BANK")])),
        Rule(name="Low-confidence valuations", priority=20, conditions=Group("and", [
            Condition("BIAS", "equal_to", "VALUATION"), Condition("CONFIDENCE", "less_than", 5),
        ])),
        Rule(name="Off-market", priority=30,
             conditions=Group("or", [Condition("PX", "between", 0, 5)])),
    ]


def scenario_rules_rank(rows: int) -> dict:
    from core.cli.demo import generate_colors
    from core.config import load_settings
    from core.runs.pipeline import assign_color_ids, rank_batch

    settings = load_settings({}, {})
    frame = assign_color_ids(generate_colors(rows, seed=11), 1)
    rules = _bench_rules()
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        ranked, outcome = rank_batch(frame, rules, settings)
        timings.append(time.perf_counter() - started)
    best = min(timings)
    return {"scenario": f"rules+rank {rows:,} rows (in memory)", "seconds": round(best, 3),
            "rows_per_s": int(rows / best), "published": len(ranked),
            "excluded": len(outcome.excluded), "peak_mb": round(_peak_mb()),
            "budget_s": BUDGET_RULES_RANK_1M if rows >= 1_000_000 else None}


def scenario_end_to_end(rows: int, fmt: str) -> dict:
    from core.access import SYSTEM
    from core.cli.demo import generate_colors
    from core.config import load_settings
    from core.runs.exports import write_csv, write_xlsx
    from core.runs.pipeline import prepare_files, publish_run
    from core.schema import INPUT_COLUMNS
    from storage import open_store

    settings = load_settings({}, {}).override(upload_max_mb=0)
    frame = generate_colors(rows, seed=5, bad_rows=rows // 1000)[list(INPUT_COLUMNS)]
    data = write_xlsx(frame) if fmt == "xlsx" else write_csv(frame)
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(str(Path(tmp) / "store"))
        started = time.perf_counter()
        prepared = prepare_files(store, [(f"bench.{fmt}", data)], settings)
        result = publish_run(store, SYSTEM, prepared, settings=settings, rules=_bench_rules(),
                             trigger="bench")
        total = time.perf_counter() - started
    rec = result.record
    return {"scenario": f"end to end {rows:,} rows {fmt}", "seconds": round(total, 3),
            "rows_per_s": int(rows / total), "stages": rec.stages, "counts": rec.counts,
            "input_mb": round(len(data) / 1e6, 1), "peak_mb": round(_peak_mb()),
            "budget_s": BUDGET_XLSX_100K if (fmt == "xlsx" and rows == 100_000) else None}


def _run_child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        return {"scenario": " ".join(args), "error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _print(result: dict) -> None:
    if "error" in result:
        print(f"{result['scenario']:<40} FAILED {result['error']}")
        return
    budget = result.get("budget_s")
    verdict = ""
    if budget:
        verdict = f"  budget {budget:.1f} s: {'OK' if result['seconds'] <= budget else 'OVER'}"
    rss = "OK" if result["peak_mb"] <= BUDGET_RSS_MB else "OVER"
    print(f"{result['scenario']:<40} {result['seconds']:>8.2f} s {result['rows_per_s']:>10,} rows/s"
          f"  peak {result['peak_mb']:>5} MB ({rss}){verdict}")
    if "stages" in result:
        stages = "  ".join(f"{k} {v:.2f}s" for k, v in result["stages"].items())
        print(f"{'':<40} stages: {stages}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs="+")
    args = parser.parse_args()
    if args.child:
        kind, rows, *rest = args.child
        result = (scenario_rules_rank(int(rows)) if kind == "rank"
                  else scenario_end_to_end(int(rows), rest[0]))
        print(json.dumps(result))
        return
    sizes = [100_000] if args.quick else [100_000, 1_000_000]
    plan = [["rank", str(n)] for n in sizes]
    plan += [["e2e", str(n), fmt] for n in sizes for fmt in ("csv", "xlsx")]
    print(f"MarketPulse pipeline benchmark ({'quick' if args.quick else 'full'})")
    for item in plan:
        _print(_run_child(item))


if __name__ == "__main__":
    main()
