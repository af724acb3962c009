"""Backup and restore benchmark: times and sizes of a backup, its verification, a restore preview
and a restore into a fresh store, for the demo store or for many published rows.

    .venv/bin/python bench/backup.py                       # the demo store (`python -m core init`)
    .venv/bin/python bench/backup.py --runs 10             # 10 runs × 100k rows (1M), built here
    .venv/bin/python bench/backup.py --runs 100 --keep /tmp/mp-bench   # 10M, reusing
                                                           # bench/search.py's build

Rows are built as bench/search.py builds them (generated, ranked, one run per business day, success
records). Every step runs in this process; the peak RSS printed is the step's own (Linux: the
process's high-water mark is reset before each step), else the process's so far. The restore goes
into an empty local store (the archive imported first, as an uploaded one would be).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _reset_peak() -> None:
    """Reset the process's peak RSS (VmHWM) so the next reading is one step's (Linux ≥ 4.0)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _demo_store(root: Path) -> str:
    url = str(root / "demo")
    env = {**os.environ, "MARKETPULSE_STORE_URL": url, "MARKETPULSE_DEMO": "1",
           "MARKETPULSE_AUTH_COOKIE_KEY": "b" * 40}
    subprocess.run([sys.executable, "-m", "core", "init"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    return url


def _rows_store(root: Path, runs: int, rows: int, cusips: int) -> str:
    spec = importlib.util.spec_from_file_location("search_bench", ROOT / "bench" / "search.py")
    assert spec is not None
    assert spec.loader is not None
    search_bench = importlib.util.module_from_spec(spec)
    sys.modules["search_bench"] = search_bench  # its workers' function is pickled by name
    spec.loader.exec_module(search_bench)
    seconds = search_bench.build(root, runs, rows, cusips)
    if seconds:
        print(f"built {runs} runs × {rows:,} rows in {seconds:.1f} s")
    return str(root / "store")


def _timed(label: str, call):
    _reset_peak()
    started = time.perf_counter()
    result = call()
    print(f"{label:<28} {time.perf_counter() - started:8.1f} s   peak RSS {_peak_mb():,.0f} MB",
          flush=True)
    return result


def measure(url: str, scratch: Path) -> None:
    from core.access import SYSTEM
    from core.compliance import backups
    from core.compliance.restore import preview_restore, restore_backup
    from storage import open_store

    source = open_store(url)
    print(f"store {url}")
    made = _timed("backup", lambda: backups.create_backup(source, SYSTEM, "bench"))
    print(f"  {made.items()}; {made.content_bytes:,} bytes of documents and blobs; archive "
          f"{made.bytes:,} bytes ({made.bytes / 1024 / 1024:,.1f} MB)")
    _timed("verify", lambda: backups.verify_backup(source, SYSTEM, made.id))
    plan = _timed("restore preview (same store)",
                  lambda: preview_restore(source, SYSTEM, made.id))
    print(f"  {'; '.join(plan.summary())}")
    target = open_store(str(scratch / "restored"))
    def import_() -> None:
        with backups.archive_file(source, SYSTEM, made.id) as file:
            backups.import_backup(target, SYSTEM, file, "bench.zip")

    _timed("import into a fresh store", import_)
    report = _timed("restore (everything)", lambda: restore_backup(target, SYSTEM, made.id))
    print(f"  {report.summary()}")
    print(f"  derived: {report.rebuilt}")
    backups.delete_backup(source, SYSTEM, made.id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=0, help="published runs (0: the demo store)")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--cusips", type=int, default=20_000)
    parser.add_argument("--keep", type=Path, help="build the rows here and reuse them next time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mp-backup-") as tmp:
        scratch = Path(tmp)
        if args.runs:
            root = args.keep or scratch / "rows"
            root.mkdir(parents=True, exist_ok=True)
            url = _rows_store(root, args.runs, args.rows, args.cusips)
        else:
            url = _demo_store(scratch)
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        measure(url, scratch)


if __name__ == "__main__":
    main()
