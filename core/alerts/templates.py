"""What run emails say and to whom (DOMAIN.md §6): recipients, subject and body templates with
{{variable}} substitution, and switches ("config/email"); plus the send log, table "email_log", one
row per delivery attempt (email and webhooks). Sending is core.alerts.email's and
core.alerts.webhooks'."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol

import pandas as pd

from core import catalog
from core.access import EDIT_NOTIFICATIONS, Actor, require
from core.audit import record_change
from core.errors import Conflict, InvalidInput
from core.runs.records import FAILED, MISSED, SUCCESS, RunRecord
from core.settings_docs import read_settings, write_settings
from storage import Store

EMAIL_KEY = catalog.EMAIL_CONFIG.key

VARIABLES: dict[str, str] = {
    "date": "the day of the notification (YYYY-MM-DD)",
    "run_id": "the run's RUN_ID",
    "status": "success, failed, missed…",
    "job": "the job's name (or the kind of run when there is no job)",
    "kind": "AUTOMATED, MANUAL or OVERRIDE",
    "published": "rows published",
    "excluded": "rows excluded by rules",
    "quarantined": "rows quarantined by validation",
    "parents": "parent colors published",
    "duration": "how long the run took",
    "files": "the run's input files",
    "error": "why the run failed (empty on success)",
    "actor": "who ran it",
    "link": "the app's address",
}
_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")

_EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")

DEFAULT_SUBJECT = "MarketPulse {{job}} run {{run_id}}: {{status}} ({{published}} published)"
DEFAULT_BODY = """MarketPulse run {{run_id}} ({{job}}, {{kind}}) on {{date}}: {{status}}.

Published: {{published}} rows, {{parents}} parents
Excluded by rules: {{excluded}}
Quarantined: {{quarantined}}
Duration: {{duration}}
Files: {{files}}
{{error}}
MarketPulse: {{link}}
"""

LOG_TABLE = catalog.EMAIL_LOG.key
LOG_COLUMNS = ["AT", "CHANNEL", "EVENT", "RUN_ID", "ATTEMPT", "STATUS", "TO", "CC", "BCC",
               "SUBJECT", "ERROR"]
OK, NOT_SENT = "ok", "failed"  # STATUS values of the send log


def render_template(template: str, values: Mapping[str, object]) -> str:
    """Replace each {{name}} with str(values[name]); anything else is left exactly as written.
    Nothing is evaluated, so values cannot reach attributes or format specs."""
    return _VARIABLE.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values
                         else m.group(0), template)


def template_problems(template: str, known: Sequence[str] = tuple(VARIABLES)) -> list[str]:
    """What would not render: unknown variables and braces that are not a {{variable}}."""
    problems = [f"unknown variable {{{{{m.group(1)}}}}} (use one of {', '.join(known)})"
                for m in _VARIABLE.finditer(template) if m.group(1) not in known]
    leftover = _VARIABLE.sub("", template)
    if "{{" in leftover or "}}" in leftover:
        problems.append("a '{{' or '}}' that is not part of a {{variable}}")
    return problems


def format_duration(seconds: float) -> str:
    """12.3 s, 2 min 05 s, 1 h 02 min."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def run_variables(record: RunRecord, *, now: datetime, link: str = "") -> dict[str, str]:
    """The template variables of one run."""
    counts = record.counts or {}
    return {
        "date": now.date().isoformat(),
        "run_id": str(record.run_id),
        "status": record.status,
        "job": record.job or record.kind.lower(),
        "kind": record.kind,
        "published": str(counts.get("published", 0)),
        "excluded": str(counts.get("excluded", 0)),
        "quarantined": str(counts.get("quarantined", 0)),
        "parents": str(counts.get("parents", 0)),
        "duration": format_duration(record.duration_s),
        "files": ", ".join(str(f.get("name", "")) for f in record.files) or "none",
        "error": record.error,
        "actor": record.actor,
        "link": link,
    }


def one_line(text: str, limit: int = 200) -> str:
    """Text fit for a header: whitespace (newlines included) collapsed, at most limit characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def record_attempt(
    store: Store,
    *,
    at: datetime,
    event: str,
    run_id: int | None,
    attempt: int,
    status: str,
    to: Sequence[str],
    cc: Sequence[str] = (),
    bcc: Sequence[str] = (),
    subject: str = "",
    error: str = "",
    channel: str = "email",
) -> None:
    """Append one delivery attempt to the send log (never a body, an attachment or a webhook's
    full address). channel: email, slack or teams."""
    stamp = pd.Timestamp(at)
    stamp = stamp.tz_convert("UTC") if stamp.tzinfo else stamp.tz_localize("UTC")
    row = pd.DataFrame({
        "AT": pd.Series([stamp], dtype="datetime64[us, UTC]"),
        "CHANNEL": pd.array([channel], dtype="string"),
        "EVENT": pd.array([event], dtype="string"),
        "RUN_ID": pd.array([run_id], dtype="Int64"),
        "ATTEMPT": pd.array([attempt], dtype="Int64"),
        "STATUS": pd.array([status], dtype="string"),
        "TO": pd.array([", ".join(to)], dtype="string"),
        "CC": pd.array([", ".join(cc)], dtype="string"),
        "BCC": pd.array([", ".join(bcc)], dtype="string"),
        "SUBJECT": pd.array([subject], dtype="string"),
        "ERROR": pd.array([error], dtype="string"),
    })
    store.append(LOG_TABLE, row, partition=stamp.strftime("%Y-%m"))


def load_send_log(store: Store, *, limit: int | None = 100) -> pd.DataFrame:
    """Delivery attempts, newest first."""
    frame = store.scan(LOG_TABLE)
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in LOG_COLUMNS})
    frame = frame.sort_values(["AT", "ATTEMPT"], ascending=False, kind="stable")
    frame = frame.reset_index(drop=True)[LOG_COLUMNS]
    return frame.head(limit) if limit else frame


# -- settings of run emails ('config/email') -------------------------------------------------
@dataclass
class EmailSettings:
    """Who gets run emails, what they say, and when they are sent."""

    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    subject: str = DEFAULT_SUBJECT
    body: str = DEFAULT_BODY
    on_success: bool = True  # automated (and override) runs that published
    on_failure: bool = True  # automated runs that failed or were missed
    after_manual_save: bool = False  # manual saves and buffered uploads that published
    attach_output: bool = True
    attach_excluded: bool = False
    max_attachment_mb: float = 10.0  # bigger files are left out with a note; 0 = no limit

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_addresses(text: str | Sequence[str], field_name: str = "to") -> list[str]:
    """Addresses from "a@x.com, b@y.com; c@z.com" (or a list); InvalidInput names a bad one."""
    parts = re.split(r"[,;\s]+", text) if isinstance(text, str) else list(text)
    addresses = [p.strip() for p in parts if p and p.strip()]
    for address in addresses:
        if not _EMAIL.match(address):
            raise InvalidInput(field_name, f"{address!r} is not an email address")
    return list(dict.fromkeys(addresses))


def load_email_settings(store: Store) -> EmailSettings:
    """The stored run-email settings, or the defaults (no recipients: nothing is sent)."""
    return get_email_settings(store)[0]


def get_email_settings(store: Store) -> tuple[EmailSettings, str | None]:
    """(settings, version) for an editor: the version goes back to save_email_settings."""
    value, version = read_settings(store, EMAIL_KEY)
    known = EmailSettings.__dataclass_fields__
    return EmailSettings(**{k: v for k, v in (value or {}).items() if k in known}), version


def save_email_settings(store: Store, actor: Actor, config: EmailSettings, *,
                        expected_version: str | None,
                        now: datetime | None = None) -> EmailSettings:
    """Validate and store the run-email settings (admins); templates must render cleanly. Saved
    over the version the editor loaded (None: nothing stored): ChangedMeanwhile when stale."""
    require(actor, EDIT_NOTIFICATIONS)
    checked = EmailSettings(**{**config.to_dict(), **{
        name: parse_addresses(getattr(config, name), name) for name in ("to", "cc", "bcc")}})
    for name in ("subject", "body"):
        problems = template_problems(getattr(checked, name))
        if problems:
            raise InvalidInput(name, "; ".join(problems))
    if not checked.subject.strip():
        raise InvalidInput("subject", "enter a subject")
    if float(checked.max_attachment_mb) < 0:
        raise InvalidInput("max_attachment_mb", "enter 0 (no limit) or a size in MB")
    before = load_email_settings(store)
    write_settings(store, EMAIL_KEY, checked.to_dict(), expected_version,
                   what="the run email settings", area="notifications", entity="email")
    record_change(store, actor, "notifications", "email_changed", "email",
                  before=before.to_dict(), after=checked.to_dict(), now=now)
    return checked


def restore_email_settings(store: Store, actor: Actor, before: dict[str, Any],
                           after: dict[str, Any]) -> None:
    """Put the run-email settings back to `before` in place of `after`, with the document's
    version (no change log: the revert logs itself); Conflict when they are no longer `after`."""
    require(actor, EDIT_NOTIFICATIONS)
    config, version = get_email_settings(store)
    if config.to_dict() != after:
        raise Conflict("the run email settings changed while they were being reverted; reload "
                       "and try again")
    known = EmailSettings.__dataclass_fields__
    restored = EmailSettings(**{k: v for k, v in before.items() if k in known})
    write_settings(store, EMAIL_KEY, restored.to_dict(), version,
                   what="the run email settings", area="notifications", entity="email")


class RunSwitches(Protocol):
    on_success: bool
    on_failure: bool
    after_manual_save: bool


def run_switch(config: RunSwitches, record: RunRecord) -> str | None:
    """The switch (of email or webhook settings) that announces this run, or None."""
    if record.kind == "MANUAL":
        return "after_manual_save" if config.after_manual_save and record.status == SUCCESS \
            else None
    if record.status == SUCCESS:
        return "on_success" if config.on_success else None
    if record.status in (FAILED, MISSED):
        return "on_failure" if config.on_failure else None
    return None  # skipped and cancelled runs were someone's decision
