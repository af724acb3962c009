"""Command line: `python -m core process|export|runs|rules|users|audit|backup|restore|demo|init ...`
(headless use).

The CLI is a composition root: it loads settings, opens the store and acts as the system user.
Every command first sweeps runs a killed process left running; a closed output pipe exits quietly.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from core.access import SYSTEM
from core.alerts.watchlists import alert_after_publish
from core.automation.sweep import sweep_runs
from core.cli import audit as cli_audit
from core.cli import backup as cli_backup
from core.cli import buffer as cli_buffer
from core.cli import columns as cli_columns
from core.cli import health as cli_health
from core.cli import jobs as cli_jobs
from core.cli import search as cli_search
from core.cli import store as cli_store
from core.cli import users as cli_users
from core.clock import utc_now
from core.config import load_settings, read_secrets_file, secrets_path, store_options
from core.errors import MarketPulseError
from core.reads import history
from core.rules import exclusion as rules
from core.runs import duplicates, pipeline, removal
from core.runs import records as runs
from core.runs.exports import write_output
from storage import StoreError, open_store

PIPE_CLOSED = 141  # 128 + SIGPIPE: what a shell reports for a program whose reader went away


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (exit 2); the full usage is one --help away.
    Subcommand parsers are of the same class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m core", description="MarketPulse engine")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("process", help="process color files as one MANUAL run")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--no-rules", action="store_true", help="apply no exclusion rules")
    p.add_argument("--out", type=Path, help="write the run's published rows (.xlsx/.csv/.parquet)")
    p.add_argument("--date-column", choices=["DATE", "DATE_1"], help="primary ranking date")
    p.add_argument("--republish", action="store_true",
                   help="publish files and colors already published again (recorded in the run)")

    p = sub.add_parser("export", help="export published colors")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--run", type=int, help="only this run")

    p = sub.add_parser("runs", help="list runs; sweep: mark runs whose process died abandoned; "
                                    "remove RUN --reason TEXT / restore RUN: take a published "
                                    "run out of every read, or bring it back")
    p.add_argument("action", nargs="?", choices=("list", "sweep", "remove", "restore"),
                   default="list")
    p.add_argument("run", nargs="?", type=int, help="the run to remove or restore")
    p.add_argument("--reason", default="", help="why the run is removed (required)")

    p = sub.add_parser("rules", help="list, add, remove or toggle exclusion rules")
    rsub = p.add_subparsers(dest="action", required=True)
    rsub.add_parser("list")
    a = rsub.add_parser("add", help="add a rule given as JSON (a file path or - for stdin)")
    a.add_argument("json")
    r = rsub.add_parser("remove")
    r.add_argument("name")
    t = rsub.add_parser("toggle")
    t.add_argument("name")

    cli_users.add_parser(sub)
    cli_buffer.add_parser(sub)
    cli_jobs.add_parser(sub)
    cli_columns.add_parser(sub)
    cli_search.add_parser(sub)
    cli_audit.add_parser(sub)
    cli_store.add_parser(sub)
    cli_health.add_parser(sub)
    cli_backup.add_parser(sub)

    sub.add_parser("init", help="prepare the store; load demo data into an empty one (demo=true)")

    p = sub.add_parser("demo", help="load demo colors into an empty store")
    p.add_argument("--force", action="store_true", help="load even if the store has runs")
    return parser


def _find_rule(store, name: str) -> rules.Rule:
    for rule in rules.load_rules(store):
        if rule.name.lower() == name.lower() or rule.id == name:
            return rule
    raise MarketPulseError(f"no rule named {name!r}")


def _print_run(result: pipeline.RunResult) -> None:
    rec = result.record
    c = rec.counts
    print(f"Run {rec.run_id} ({rec.kind}) {rec.status} in {rec.duration_s:.2f} s")
    print(f"  read {c['read']}, quarantined {c['quarantined']}, excluded {c['excluded']}, "
          f"published {c['published']} ({c['parents']} parents, {c['children']} children)")
    for name, count in rec.per_rule.items():
        print(f"  rule {name!r} excluded {count}")
    stages = ", ".join(f"{k} {v:.2f}s" for k, v in rec.stages.items())
    print(f"  stages: {stages}")
    for line in duplicates.run_notes(rec):
        print(f"  {line}")
    report = result.report
    print(f"Validation: quality {report.quality_score:.1f}/100; {report.summary()}")
    for problem in report.blocking[:50]:
        print(f"  ERROR {problem.file}: {problem.message}")
    if len(report.blocking) > 50:
        print(f"  ... and {len(report.blocking) - 50} more errors (see the quarantined rows)")
    by_code: dict[str, list] = {}
    for problem in report.warnings:
        by_code.setdefault(problem.code, []).append(problem)
    for code, problems in by_code.items():
        print(f"  warning {code} on {len(problems)} row(s), e.g. {problems[0].file}: "
              f"{problems[0].message}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit code is 0, 2 (a clear error on stderr) or PIPE_CLOSED."""
    try:
        code = _main(argv)
        sys.stdout.flush()  # inside the try: a closed pipe may only show now
    except BrokenPipeError:
        # The reader went away (`... | head -1`): stop quietly, as Python's docs recommend, and
        # point stdout at devnull so the interpreter's last flush does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return PIPE_CLOSED
    return code


def _main(argv: Sequence[str] | None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(read_secrets_file(), os.environ)
        store = open_store(settings["store.url"], store_options(settings))
        # `store copy` and `scheduler-health` only read; `runs sweep` sweeps as its own work
        if (args.command, getattr(args, "action", "")) not in (
                ("runs", "sweep"), ("store", "copy"), ("scheduler-health", "")):
            _sweep(store, settings)
        return _run(args, store, settings)
    except (MarketPulseError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise
    except OSError as exc:
        print(f"error: {exc.filename or ''} {exc.strerror or exc}", file=sys.stderr)
        return 2


def _sweep(store, settings) -> None:
    """At start: runs a killed process left running become abandoned (logged on stderr)."""
    try:
        sweep_runs(store, SYSTEM, settings)
    except (MarketPulseError, StoreError) as exc:  # the command itself may still work
        logging.getLogger(__name__).warning("could not sweep dead runs: %s", exc)


def _run(args: argparse.Namespace, store, settings) -> int:
    if args.command == "process":
        # Local files chosen by the operator: the upload size limit protects the web process only.
        settings = settings.override(upload_max_mb=0)
        if args.date_column:
            settings = settings.override(ranking_date_column=args.date_column)
        files = [(path.name, path.read_bytes()) for path in args.files]
        result = pipeline.process_files(
            store, SYSTEM, files, settings=settings, trigger="cli",
            rules=[] if args.no_rules else None, republish=args.republish,
        )
        _print_run(result)
        alert_after_publish(store, result.record, utc_now(), settings=settings)
        if args.out:
            write_output(result.published, args.out)
            print(f"Wrote {len(result.published)} rows to {args.out}")
        return 0
    if args.command == "export":
        if args.run is not None:
            runs.get_run(store, args.run)  # NotFound when the run does not exist
        fmt = args.out.suffix.lower().lstrip(".")
        if fmt not in ("xlsx", "csv", "parquet"):
            suffix = args.out.suffix or "(none)"
            raise MarketPulseError(f"output file: unsupported suffix {suffix!r} in "
                                   f"{args.out.name}; use .xlsx, .csv or .parquet")
        data, rows = history.export_colors(
            store, SYSTEM, fmt, run_ids=[args.run] if args.run is not None else None)
        args.out.write_bytes(data)  # the export is logged by core
        print(f"Wrote {rows} rows to {args.out}")
        return 0
    if args.command == "runs" and args.action == "sweep":
        found = sweep_runs(store, SYSTEM, settings, limit=None)
        for rec in found:
            print(f"Run {rec.run_id} {rec.error}; its partial data was removed")
        print(f"{len(found)} run(s) abandoned")
        return 0
    if args.command == "runs" and args.action in ("remove", "restore"):
        if args.run is None:
            raise MarketPulseError(f"runs {args.action}: name the run (e.g. runs {args.action} 7)")
        if args.action == "remove":
            record = removal.remove_run(store, SYSTEM, args.run, args.reason)
            print(f"Run {record.run_id} removed: its colors left search, the dashboard and "
                  "exports (undo: runs restore)")
        else:
            record = removal.restore_run(store, SYSTEM, args.run)
            print(f"Run {record.run_id} restored: its colors are published again")
        return 0
    if args.command == "runs":
        print(f"{'RUN':>5}  {'KIND':9} {'STATUS':9} {'STARTED':25} {'PUBLISHED':>9} {'PARENTS':>7}"
              "  FILES")
        for rec in runs.load_runs(store):
            names = ", ".join(str(f.get("name")) for f in rec.files)
            started = rec.started_at[:19].replace("T", " ")
            print(f"{rec.run_id:>5}  {rec.kind:9} {rec.status:9} {started:25} "
                  f"{rec.counts.get('published', 0):>9} {rec.counts.get('parents', 0):>7}  {names}")
        return 0
    if args.command == "rules":
        return _rules(args, store)
    if args.command == "users":
        return cli_users.run(args, store)
    if args.command == "buffer":
        return cli_buffer.run(args, store, settings)
    if args.command == "jobs":
        return cli_jobs.run(args, store, settings)
    if args.command == "audit":
        return cli_audit.run(args, store)
    if args.command == "columns":
        return cli_columns.run(args, store, settings)
    if args.command == "scheduler-health":
        return cli_health.run(args, store)
    if args.command in ("backup", "backups", "restore"):
        return cli_backup.run(args, store, settings)
    if args.command == "store":
        return cli_store.run(args, store, settings)
    if args.command in ("search", "compact"):
        return cli_search.run(args, store, settings)
    if args.command == "init":
        print(f"Store: {settings['store.url']}")
        from core.compliance.store_copy import describe_unfinished, unfinished_copy

        marker = unfinished_copy(store)
        if marker is not None:
            print(f"warning: {describe_unfinished(store, marker)}", file=sys.stderr)
        if not settings["auth.cookie_key"]:
            from core.identity.login_key import ensure_cookie_key

            ensure_cookie_key(settings, secrets_path())
        from core.identity.login_key import forget_stored_cookie_key

        if forget_stored_cookie_key(store):
            print("Deleted the login cookie key an older version kept in the store")
        if settings["demo"] and marker is None:  # never demo data into a copy half-made
            from core.cli.demo import load_demo

            loaded = load_demo(store, settings)
            if loaded:
                print(f"Loaded {loaded} demo runs (set MARKETPULSE_DEMO=0 to start empty)")
        return 0
    if args.command == "demo":
        from core.cli.demo import load_demo

        loaded = load_demo(store, settings, force=args.force)
        print(f"Loaded {loaded} demo runs" if loaded else "Store already has runs; nothing loaded")
        return 0
    raise AssertionError(args.command)


def _rules(args: argparse.Namespace, store) -> int:
    if args.action == "list":
        for rule in rules.load_rules(store):
            state = "active" if rule.active else "inactive"
            print(f"{rule.priority:>4}  {rule.name}  [{state}]  {rules.describe(rule.conditions)}")
        return 0
    if args.action == "add":
        text = sys.stdin.read() if args.json == "-" else Path(args.json).read_text()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MarketPulseError(f"rule JSON is not valid: {exc}") from None
        saved = rules.save_rule(store, SYSTEM, rules.Rule.from_dict(data))
        print(f"Saved rule {saved.name!r} ({rules.describe(saved.conditions)})")
        return 0
    rule = _find_rule(store, args.name)
    if args.action == "remove":
        rules.delete_rule(store, SYSTEM, rule.id)
        print(f"Removed rule {rule.name!r}")
    else:
        toggled = rules.toggle_rule(store, SYSTEM, rule.id)
        print(f"Rule {toggled.name!r} is now {'active' if toggled.active else 'inactive'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
