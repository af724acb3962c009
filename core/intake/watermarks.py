"""Where each job's SQL sources stopped reading (DOMAIN.md §4): the watermark, the newest value of
the source's watermark column that a published run read. A run reads only newer rows, and the
watermark moves on only once that run has published, so a failed run reads the same rows again.

One document per job (sources/watermarks/<job id>), one entry per source: the source's name,
table and watermark column, so a job that changes any of them starts that source afresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from core import catalog
from storage import ObjectNotFound, Store, WriteConflict

PREFIX = catalog.SOURCE_WATERMARKS.key
# Python type of a watermark value ↔ its name in the document (JSON has no dates or decimals).
_ENCODE: dict[type, str] = {datetime: "timestamp", date: "date", int: "integer",
                            Decimal: "decimal", float: "float", str: "text"}
_DECODE: dict[str, Any] = {"timestamp": datetime.fromisoformat, "date": date.fromisoformat,
                           "integer": int, "decimal": Decimal, "float": float, "text": str}


@dataclass(frozen=True)
class Watermark:
    """A stored watermark: the value, and the run that published what it covers."""

    value: Any
    run_id: int
    at: str

    def describe(self) -> str:
        return describe_value(self.value)


def describe_value(value: Any) -> str:
    """A watermark value in words for run records and the job page ("(start)" before any)."""
    if value is None:
        return "(start)"
    return value.isoformat(sep=" ") if isinstance(value, datetime) else str(value)


def source_id(source: dict[str, Any]) -> str:
    """The entry of a source in its job's document: name, table and watermark column."""
    parts = (source["secret"], source["table"], source["watermark_column"])
    return "|".join(str(part).casefold() for part in parts)


def load_watermark(store: Store, job_id: str, source: dict[str, Any]) -> Watermark | None:
    """The source's watermark in the job; None when no run of it has published yet."""
    if not job_id:
        return None
    entry = _load(store, job_id)[0].get(source_id(source))
    if entry is None:
        return None
    return Watermark(_decode(entry), int(entry["run_id"]), str(entry["at"]))


def save_watermark(store: Store, job_id: str, source: dict[str, Any], value: Any, *,
                   run_id: int, at: datetime) -> None:
    """Advance the source's watermark after run_id published (one writer, the scheduler, holds
    the lease; a concurrent write is retried once over the newer document)."""
    entry = {"type": _ENCODE[_plain_type(value)], "value": _text(value), "run_id": run_id,
             "at": at.isoformat()}
    for attempt in range(2):
        document, version = _load(store, job_id)
        try:
            store.put(PREFIX + job_id, {**document, source_id(source): entry}, version)
            return
        except WriteConflict:
            if attempt:
                raise


def _load(store: Store, job_id: str) -> tuple[dict[str, Any], str | None]:
    try:
        value, version = store.get(PREFIX + job_id)
    except ObjectNotFound:
        return {}, None
    return dict(value), version


def _plain_type(value: Any) -> type:
    for kind in _ENCODE:  # datetime before date: a datetime is a date too
        if isinstance(value, kind) and not isinstance(value, bool):
            return kind
    raise TypeError(f"a watermark cannot be a {type(value).__name__}")


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def _decode(entry: dict[str, Any]) -> Any:
    return _DECODE[entry["type"]](entry["value"])
