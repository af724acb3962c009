"""One run: read inputs → validate → union → rules (unless override) → rank → publish atomically
→ build the output workbook.

Publishing writes the run's partitions first and the run record last; the record saying `success`
is what makes the rows visible, so a crash mid-run leaves nothing visible. The output workbook is
built after that (core.runs.workbooks: the record says pending until it is ready), so the colors
are searchable without waiting for the slowest part of a run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from core.access import MANUAL_SESSION, REPUBLISH, TRIGGER_RUN, Actor, entitled, require
from core.audit import record_change
from core.clock import now_or
from core.config import Settings
from core.ingest.color_file import read_colors
from core.ingest.columns import load_column_config
from core.ingest.validation import Validated, ValidationReport, validate_colors
from core.rules.exclusion import Rule, RulesOutcome, load_rules, match_rules
from core.runs import duplicates, workbooks
from core.runs import records as runs
from core.runs.exports import output_columns
from core.runs.liveness import Heartbeat
from core.runs.memory import release_memory
from core.runs.ranking import check_invariants, rank_colors
from core.schema import (
    COLOR_ID,
    COLOR_KEY,
    CUSIP,
    IS_PARENT,
    POSITION,
    PROCESSED_AT,
    PROCESSING_TYPE,
    RUN_ID,
)
from storage import Store
from storage.run_tables import run_tables

log = logging.getLogger(__name__)

MANUAL, AUTOMATED, OVERRIDE = "MANUAL", "AUTOMATED", "OVERRIDE"
Progress = Callable[[str, float], None]  # (stage, fraction done) for progress bars


@dataclass
class Prepared:
    """Validated inputs of a run, not yet stored."""

    valid: pd.DataFrame
    quarantined: pd.DataFrame
    report: ValidationReport
    files: list[dict[str, object]] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=dict)
    keys: pd.Series | None = None  # COLOR_KEY of each valid row, when computed while validating


@dataclass
class RunResult:
    record: runs.RunRecord
    published: pd.DataFrame
    excluded: pd.DataFrame
    quarantined: pd.DataFrame
    report: ValidationReport
    workbook: bytes  # b"" until it is built (or when building it failed: see the record)


def _noop(stage: str, fraction: float) -> None:
    return None


def prepare_files(
    store: Store, files: Sequence[tuple[str, bytes]], settings: Settings, *,
    skip_published: bool = True, whole: bool = True,
) -> Prepared:
    """Read and validate every file. A whole-file problem raises FileProblem before anything is
    stored; row problems are collected in the report and the bad rows quarantined.
    skip_published: a file identical to one a visible run published (or to an earlier one here)
    is not read, only listed with a note (core.runs.duplicates). Each file's SHA-256 is listed,
    unless
    whole=False: its rows may still change (a manual session), so it never makes a later identical
    file a duplicate (its colors still do)."""
    columns = load_column_config(store)
    skipped: list[dict[str, object]] = []
    shas = [duplicates.file_sha256(data) for _, data in files]  # once: 0.3 s a 150 MB file
    if skip_published:
        kept, skipped = duplicates.skip_published_files(store, files, shas)
        files, shas = [files[i] for i in kept], [shas[i] for i in kept]
    started = time.perf_counter()
    batches = [read_colors(data, name, columns=columns, settings=settings) for name, data in files]
    read_s = time.perf_counter() - started
    started = time.perf_counter()
    # The rows' COLOR_KEYs are hashed in DuckDB (which lets go of the GIL) while they are checked:
    # 0.9 s of a 1M-row run that needed a second core only.
    with ThreadPoolExecutor(max_workers=1) as pool:
        hashing = [pool.submit(duplicates.color_keys, batch.frame) for batch in batches]
        validated = [validate_colors(batch, settings) for batch in batches]
        keys = _valid_keys(hashing, validated)
    validate_s = time.perf_counter() - started
    report = validated[0].report if validated else ValidationReport([], 0, 0)
    for item in validated[1:]:
        report = report.merge(item.report)
    files_meta: list[dict[str, object]] = [
        {"name": b.file, "sheet": b.sheet, "rows": len(b.frame),
         "quarantined": len(v.quarantined),
         **({"sha256": sha} if whole else {})}
        for b, v, sha in zip(batches, validated, shas, strict=True)
    ]
    files_meta += skipped
    return Prepared(
        valid=_concat([v.valid for v in validated]),
        quarantined=_concat([v.quarantined for v in validated]),
        report=report,
        files=files_meta,
        stages={"read": round(read_s, 3), "validate": round(validate_s, 3)},
        keys=keys,
    )


def _valid_keys(hashing: list[Future[pd.Series]], validated: list[Validated]
                ) -> pd.Series | None:
    """The COLOR_KEYs of the valid rows of every batch, in Prepared.valid's order; None when a
    hash failed (the run hashes its rows itself then, and fails as a run if it must)."""
    try:
        keys = [future.result() for future in hashing]
    except Exception:
        log.warning("hashing colors beside validation failed; the run hashes them", exc_info=True)
        return None
    parts = [_kept(k, v.kept) for k, v in zip(keys, validated, strict=True)
             if v.kept is not None and len(v.valid.columns)]
    if len(parts) != len([v for v in validated if len(v.valid.columns)]):
        return None
    return pd.concat(parts, ignore_index=True) if parts else None


def _kept(keys: pd.Series, kept: np.ndarray) -> pd.Series:
    """The keys at the kept positions (ascending), filtered by a mask: Series.iloc takes each
    position (1M hashes: 0.17 s, a mask 3× less)."""
    mask = np.zeros(len(keys), dtype=bool)
    mask[kept] = True
    return pd.Series(keys.array[mask], dtype=keys.dtype)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f.columns)]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(
        drop=True
    )


def _stamp(frame: pd.DataFrame, run_id: int, kind: str, at: datetime) -> pd.DataFrame:
    """The run's columns added; POSITION keeps the rows' order (stores may sort them)."""
    frame = frame.copy(deep=False)  # new columns only: the rows are not copied
    frame[RUN_ID] = pd.array(np.full(len(frame), run_id), dtype="Int64")
    frame[PROCESSED_AT] = pd.Timestamp(at).tz_convert("UTC")
    frame[PROCESSING_TYPE] = pd.array([kind] * len(frame), dtype="string")
    frame[POSITION] = pd.array(np.arange(1, len(frame) + 1), dtype="Int64")
    return frame


def assign_color_ids(frame: pd.DataFrame, run_id: int) -> pd.DataFrame:
    """COLOR_ID = "<run>-<ordinal>": unique across runs, stable within one."""
    frame = frame.copy(deep=False)
    ordinals = pd.Series(np.arange(1, len(frame) + 1), index=frame.index).astype("string")
    frame[COLOR_ID] = (f"{run_id}-" + ordinals).astype("string")
    return frame


def publish_run(
    store: Store,
    actor: Actor,
    prepared: Prepared,
    *,
    kind: str = MANUAL,
    trigger: str = "manual",
    settings: Settings,
    rules: list[Rule] | None = None,
    pinned: Sequence[str] = (),
    job: str = "",
    now: datetime | None = None,
    progress: Progress = _noop,
    republish: bool = False,
    requested_by: str = "",
    request_id: str = "",
    build_workbook: bool = True,
) -> RunResult:
    """Rules (none for OVERRIDE), rank, and publish one run atomically; returns the result.
    The run takes prepared's valid rows (prepared.valid is emptied), so they are released once
    ranked rather than held beside the published copy.
    Colors a visible run already published are left out of the batch (core.runs.duplicates) unless
    an admin republishes them; either way the record counts them and says where they were first.
    Then the output workbook is built (build_workbook=False: the caller builds it with
    core.runs.workbooks.build_workbook; the scheduler rebuilds one whose builder died).

    A failure after the run id is taken records a failed run and leaves nothing visible.
    requested_by (default: the actor) and request_id say whose "Run now" this run carries out."""
    require(actor, MANUAL_SESSION if kind == MANUAL else TRIGGER_RUN)
    if republish:
        require(actor, REPUBLISH)
    started_at = now_or(now)
    clock = time.perf_counter()
    run_id = runs.next_run_id(store)
    record = runs.RunRecord(
        run_id=run_id, kind=kind, trigger=trigger, actor=actor.username, job=job,
        started_at=started_at.isoformat(), files=prepared.files, stages=dict(prepared.stages),
        quality_score=prepared.report.quality_score,
        problems=[vars(p) for p in prepared.report.problems[:500]], republished=republish,
        requested_by=requested_by or actor.username, request_id=request_id,
    )
    beat = Heartbeat(store, record, settings)  # writes it running, with its owner
    try:
        with beat:
            result = _process(store, prepared, record, kind, settings, rules, pinned,
                              started_at, progress)
    except Exception as exc:
        _abandon(store, record, exc, started_at + timedelta(seconds=time.perf_counter() - clock))
        raise
    record.status = runs.SUCCESS
    record.duration_s = round(time.perf_counter() - clock, 3)
    # On the caller's clock (a scheduler step's `now`), like started_at.
    finished = started_at + timedelta(seconds=record.duration_s)
    record.finished_at = finished.isoformat()
    beat.publish(record)  # the visibility point (unless a sweep abandoned the run meanwhile)
    runs.bump_data_version(store)
    record_change(store, actor, "runs", "run_published", f"run {run_id}",
                  after={"kind": kind, "counts": record.counts}, detail=trigger, now=finished)
    if build_workbook:
        progress("workbook", 0.9)
        frames = workbooks.RunFrames(result.published, result.excluded, result.quarantined)
        settled, result.workbook = workbooks.build_workbook(store, run_id, frames)
        result.record = settled or result.record
    progress("done", 1.0)
    return result


def active_rules(store: Store, rules: list[Rule] | None = None) -> list[Rule]:
    """The given rules (or the stored ones) that are active."""
    return [r for r in (load_rules(store) if rules is None else rules) if r.active]


def rank_batch(
    batch: pd.DataFrame, rules: list[Rule], settings: Settings, *, pinned: Sequence[str] = (),
    consume: bool = False,
) -> tuple[pd.DataFrame, RulesOutcome]:
    """Apply exclusion rules, then rank what is kept (DOMAIN.md §2: rank after exclusions).
    Used by publishing and by previews, so a preview is exactly what would be published.
    The kept rows are never copied out: ranking gathers them once, already in ranked order.
    consume: the caller gives the batch up (its columns are emptied as they are ranked)."""
    found = match_rules(batch, rules)
    kept = np.flatnonzero(~found.excluded)
    excluded = found.excluded_rows(batch)
    if len(kept):
        ranked = rank_colors(batch, date_column=settings["ranking.date_column"], pinned=pinned,
                             rows=kept, consume=consume)
    else:
        ranked = batch.iloc[:0]
    outcome = RulesOutcome(kept=ranked, excluded=excluded, counts=found.counts,
                           matches=found.matches)
    return ranked, outcome


def _process(store: Store, prepared: Prepared, record: runs.RunRecord, kind: str,
             settings: Settings, rules: list[Rule] | None, pinned: Sequence[str],
             at: datetime, progress: Progress) -> RunResult:
    run_id = record.run_id
    read = len(prepared.valid) + len(prepared.quarantined)
    # The run takes the rows: nothing else holds them once ranked (a million rows are ~300 MB).
    batch, prepared.valid = prepared.valid, pd.DataFrame()
    keys, prepared.keys = prepared.keys, None
    if len(batch) and COLOR_ID not in batch.columns:
        batch = assign_color_ids(batch, run_id)
    batch = _without_published(store, batch, record, keys)
    clock = time.perf_counter()
    active = [] if kind == OVERRIDE else active_rules(store, rules)
    progress("rules", 0.3)
    ranked, outcome = rank_batch(batch, active, settings, pinned=pinned, consume=True)
    del batch
    release_memory()
    record.stages["rules+rank"] = round(time.perf_counter() - clock, 3)
    clock = time.perf_counter()
    published = _stamp(ranked, run_id, kind, at)
    excluded = _stamp(outcome.excluded, run_id, kind, at)
    quarantined = _stamp(prepared.quarantined, run_id, kind, at)
    progress("publish", 0.7)
    # The publish gate is checked while the rows are written (the writing lets go of the GIL):
    # a refusal fails the run, which removes what it wrote (_abandon); nothing was visible.
    with ThreadPoolExecutor(max_workers=1) as pool:
        gate = pool.submit(check_invariants, published)
        if len(published):
            published = published[[*output_columns(published), POSITION, COLOR_KEY]]
        run_tables(store).append_run(run_id, {runs.COLORS_TABLE: published,
                                              runs.EXCLUDED_TABLE: excluded,
                                              runs.QUARANTINED_TABLE: quarantined})
        gate.result()
    workbooks.mark_pending(store, record)
    record.stages["publish"] = round(time.perf_counter() - clock, 3)
    parents = int(published[IS_PARENT].sum()) if len(published) else 0
    record.counts = {
        "read": read,
        "quarantined": len(prepared.quarantined),
        "excluded": len(outcome.excluded),
        "published": len(published),
        "parents": parents,
        "children": len(published) - parents,
        "cusips": int(published[CUSIP].nunique()) if len(published) else 0,
    }
    record.per_rule = {k: int(v) for k, v in outcome.counts.items()}
    record.rules_applied = [r.name for r in active]
    return RunResult(record, published, excluded, quarantined, prepared.report, b"")


def _without_published(store: Store, batch: pd.DataFrame, record: runs.RunRecord,
                       keys: pd.Series | None = None) -> pd.DataFrame:
    """The batch stamped with COLOR_KEY (keys: the batch's, when already hashed), without the
    colors a visible run already published (all kept when the run republishes); the record
    notes how many and where they were first."""
    if not len(batch):
        return batch
    started = time.perf_counter()
    batch = batch.copy(deep=False)
    given = keys is not None and len(keys) == len(batch)
    batch[COLOR_KEY] = (keys.set_axis(batch.index) if given and keys is not None
                        else duplicates.color_keys(batch))
    found = duplicates.find_published(store, batch, batch[COLOR_KEY])
    record.stages["already_published"] = round(time.perf_counter() - started, 3)
    if found.count:
        record.already_published = found.to_dict()
        log.info("run %s: %s", record.run_id, found.sentence(
            "published again" if record.republished else "skipped"))
    if not found.count or record.republished:
        return batch
    return batch[~found.skipped].reset_index(drop=True)


def workbook_for(result: RunResult, actor: Actor) -> bytes:
    """The run's output workbook as this actor may download it (their sectors and columns);
    b"" while an unrestricted actor's is not built."""
    if actor.sectors is None and actor.columns is None:
        return result.workbook
    return workbooks.render_workbook(workbooks.RunFrames(
        *(entitled(frame, actor) for frame in (result.published, result.excluded,
                                                result.quarantined))))


def _abandon(store: Store, record: runs.RunRecord, exc: BaseException, finished: datetime
             ) -> None:
    """Mark the run failed and remove whatever it had written (it was never visible)."""
    log.exception("run %s failed", record.run_id)
    record.status = runs.FAILED
    record.error = str(exc) or type(exc).__name__
    record.finished_at = finished.isoformat()
    try:
        run_tables(store).remove_run(record.run_id)
    except Exception:  # cleanup is best effort; readers ignore failed runs anyway
        log.warning("could not remove the rows of failed run %s", record.run_id)
    store.delete_blob(runs.output_blob_key(record.run_id))
    workbooks.forget_pending(store, record.run_id)
    runs.save_run(store, record)


def process_files(
    store: Store,
    actor: Actor,
    files: Sequence[tuple[str, bytes]],
    *,
    settings: Settings,
    kind: str = MANUAL,
    trigger: str = "manual",
    now: datetime | None = None,
    rules: list[Rule] | None = None,
    progress: Progress = _noop,
    republish: bool = False,
) -> RunResult:
    """Read, validate and publish files as one run (the CLI's `process`, a manual upload).
    rules=None applies the stored active rules; [] applies none. republish (admins): files and
    colors already published are published again."""
    require(actor, MANUAL_SESSION if kind == MANUAL else TRIGGER_RUN)
    if republish:
        require(actor, REPUBLISH)
    progress("read", 0.0)
    prepared = prepare_files(store, files, settings, skip_published=not republish)
    return publish_run(store, actor, prepared, kind=kind, trigger=trigger, settings=settings,
                       rules=rules, now=now, progress=progress, republish=republish)

