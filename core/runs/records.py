"""Run records: the RUN_ID sequence, one record per processing execution, and which runs are
visible.

A run's rows become visible only when its record says `success` (DESIGN.md §3): readers ask
`visible_run_ids` and never see the partitions of a running, failed or removed run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from core import catalog
from core.clock import now_or
from core.errors import NotFound
from storage import ANY_VERSION, ObjectNotFound, Store, WriteConflict, get_many

SEQUENCE_KEY = catalog.RUN_SEQUENCE.key
DATA_VERSION_KEY = catalog.DATA_VERSION.key
RUNS_PREFIX = catalog.RUNS.key
OUTPUTS_PREFIX = catalog.OUTPUTS.key

# Tables a run writes (through the store's run-table port, storage.run_tables).
COLORS_TABLE = catalog.COLORS.key
EXCLUDED_TABLE = catalog.EXCLUDED.key
QUARANTINED_TABLE = catalog.QUARANTINED.key
RUN_TABLES = (COLORS_TABLE, EXCLUDED_TABLE, QUARANTINED_TABLE)

QUEUED, RUNNING, SUCCESS, FAILED = "queued", "running", "success", "failed"
SKIPPED, MISSED, CANCELLED, REMOVED = "skipped", "missed", "cancelled", "removed"
ABANDONED = "abandoned"  # its process died while running (core.runs.liveness)
STATUSES = (QUEUED, RUNNING, SUCCESS, FAILED, SKIPPED, MISSED, CANCELLED, REMOVED, ABANDONED)


def run_key(run_id: int) -> str:
    return f"{RUNS_PREFIX}{run_id:08d}"


def output_blob_key(run_id: int) -> str:
    return f"{OUTPUTS_PREFIX}run-{run_id:08d}.xlsx"


@dataclass
class RunRecord:
    """What one run did: who, how, when, counts, per-stage durations, files, and the outcome."""

    run_id: int
    kind: str  # AUTOMATED | MANUAL | OVERRIDE
    trigger: str  # cli | manual_save | upload | scheduled | run_now | ...
    actor: str  # who ran it: the user, or "system" for the scheduler
    status: str = RUNNING
    started_at: str = ""
    finished_at: str = ""
    duration_s: float = 0.0
    job: str = ""
    files: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    per_rule: dict[str, int] = field(default_factory=dict)
    rules_applied: list[str] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=dict)
    quality_score: float | None = None
    problems: list[dict[str, Any]] = field(default_factory=list)  # first 500 report entries
    error: str = ""
    output: str = ""  # blob key of the output workbook, once it is built
    # The output workbook is built after the rows are visible (core.runs.workbooks):
    # pending → ready | failed (workbook_error says why); "" for a run that published nothing.
    workbook: str = ""
    workbook_error: str = ""
    owner: dict[str, Any] = field(default_factory=dict)  # host, pid, start of a running run
    heartbeat_at: str = ""  # refreshed while running (core.runs.liveness)
    # Colors of the batch a visible run already held (core.runs.duplicates): count and first places;
    # skipped, unless an admin republished them (republished: True).
    already_published: dict[str, Any] = field(default_factory=dict)
    republished: bool = False
    # Who asked for it: the user behind a "Run now" the scheduler ran as system (else the actor),
    # and the request (core.automation.jobs.Trigger id) the page follows until the run ends.
    requested_by: str = ""
    request_id: str = ""
    # An admin took a published run out of every read (core.runs.removal): by, at, reason. Its rows
    # stay stored, so undo brings it back exactly.
    removal: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def next_run_id(store: Store) -> int:
    """Take the next RUN_ID from the sequence (safe across processes: compare-and-set loop)."""
    while True:
        try:
            value, version = store.get(SEQUENCE_KEY)
        except ObjectNotFound:
            value, version = {"next": 1}, None
        run_id = int(value["next"])
        try:
            store.put(SEQUENCE_KEY, {"next": run_id + 1}, expected_version=version)
            return run_id
        except WriteConflict:
            continue


def save_run(store: Store, record: RunRecord) -> None:
    store.put(run_key(record.run_id), record.to_dict(), expected_version=ANY_VERSION)


def get_run(store: Store, run_id: int) -> RunRecord:
    try:
        value, _ = store.get(run_key(run_id))
    except ObjectNotFound:
        raise NotFound(f"run {run_id} does not exist") from None
    return RunRecord.from_dict(value)


def load_runs(store: Store, *, limit: int | None = None) -> list[RunRecord]:
    """Run records, newest first."""
    keys = sorted(store.list(RUNS_PREFIX), reverse=True)
    if limit is not None:
        keys = keys[:limit]
    found = get_many(store, keys)  # in parallel where the store can (S3)
    return [RunRecord.from_dict(found[key][0]) for key in keys if key in found]


def visible_run_ids(store: Store) -> list[int]:
    """Runs whose rows readers may see (published successfully and not removed)."""
    return visible_of(load_runs(store))


def visible_of(records: Iterable[RunRecord]) -> list[int]:
    """The visible runs among these records."""
    return sorted(r.run_id for r in records if r.status == SUCCESS)


def bump_data_version(store: Store, now: datetime | None = None) -> None:
    """Mark published data as changed, so caches keyed on data_version refresh."""
    at = now_or(now).isoformat()
    store.put(DATA_VERSION_KEY, {"changed_at": at}, expected_version=ANY_VERSION)


def data_version(store: Store) -> str:
    """A token that changes whenever published data changes (cache key for the UI)."""
    try:
        return store.get(DATA_VERSION_KEY)[1]
    except ObjectNotFound:
        return "0"
