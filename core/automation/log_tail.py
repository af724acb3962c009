"""The scheduler's recent log lines, kept in the store (scheduler/log) so the Automation page can
show them: a logging handler holding the last LINES lines, saved with each heartbeat when new lines
arrived. Bounded twice (lines and characters per line), so the document stays small."""

from __future__ import annotations

import logging
from collections import deque
from datetime import UTC, datetime
from typing import Any

from core import catalog
from storage import ANY_VERSION, ObjectNotFound, Store

LOG_KEY = catalog.SCHEDULER_LOG.key
LINES = 200
LINE_CHARS = 500


class LogTail(logging.Handler):
    """Keeps the last `lines` records as {at, level, logger, message}; `save` writes them."""

    def __init__(self, lines: int = LINES, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.lines: deque[dict[str, str]] = deque(maxlen=lines)
        self._changed = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                error = record.exc_info[1]
                message += f" ({type(error).__name__}: {error})"
            self.lines.append({
                "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="seconds"),
                "level": record.levelname, "logger": record.name,
                "message": message[:LINE_CHARS]})
            self._changed = True
        except Exception:  # a bad log call must not break the scheduler
            self.handleError(record)

    def save(self, store: Store, owner: str) -> bool:
        """Write the lines (when new ones arrived since the last save); True if written."""
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            if not self._changed:
                return False
            lines, self._changed = list(self.lines), False
        store.put(LOG_KEY, {"owner": owner, "lines": lines}, ANY_VERSION)
        return True


def load_log_tail(store: Store) -> list[dict[str, Any]]:
    """The scheduler's last log lines, oldest first ([] before it ever logged)."""
    try:
        return list(store.get(LOG_KEY)[0].get("lines", []))
    except ObjectNotFound:
        return []
