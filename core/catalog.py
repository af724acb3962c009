"""Every document, table and blob the product keeps in the Store: its key (an exact key, a prefix
ending in "/", or a table name), the module that owns it and its kind. Modules take their key
constants from these entries; backups, restore and `store copy` read the kinds to know what to
carry. tests/unit/test_catalog.py fails when a workflow writes a key no entry knows.

Kinds: STATE must be backed up (losing it loses work); DERIVED is rebuilt from state or re-made
by the running product (compacted copies, caches, heartbeats, leases), so a backup may skip it;
SECRET must never be in the store at all: the login cookie key, SMTP, AWS and Oracle passwords live
in the secrets file or the environment (DESIGN.md §5). The one SECRET entry is where versions
before issue 10 kept the cookie key: deleted when found, never written. ARCHIVE is the backup
area itself: kept in the store, never carried inside another backup or a store copy.

SCHEMA_VERSION is the store's layout version: raised when a key's or a table's meaning changes, so
a backup made by a newer MarketPulse is refused by an older one rather than misread."""

from __future__ import annotations

from dataclasses import dataclass

DOCUMENTS, TABLES, BLOBS = "documents", "tables", "blobs"
PARTS = (DOCUMENTS, TABLES, BLOBS)
STATE, DERIVED, SECRET, ARCHIVE = "state", "derived", "secret", "archive"
KINDS = (STATE, DERIVED, SECRET, ARCHIVE)
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Entry:
    """One kind of stored thing. `key` is an exact document key, a prefix ending in "/" (the
    entry holds every key below it) or, for tables, the table name."""

    part: str
    key: str
    owner: str  # the module that names the key (and writes it): "core.identity.user_records"
    kind: str
    what: str

    @property
    def is_prefix(self) -> bool:
        return self.key.endswith("/")

    @property
    def package(self) -> str:
        """core's package of the owner ("identity"), or "core" for the base modules."""
        parts = self.owner.split(".")
        return parts[1] if len(parts) > 2 else parts[0]

    def holds(self, key: str) -> bool:
        """Whether a key (or table name) of this entry's part belongs to this entry."""
        return key.startswith(self.key) if self.is_prefix else key == self.key


ENTRIES: list[Entry] = []


def _add(part: str, key: str, owner: str, kind: str, what: str) -> Entry:
    entry = Entry(part, key, owner, kind, what)
    ENTRIES.append(entry)
    return entry


def _doc(key: str, owner: str, kind: str, what: str) -> Entry:
    return _add(DOCUMENTS, key, owner, kind, what)


# -- documents ------------------------------------------------------------------------------------
CLAIMS = _doc("claims/", "core.claims", STATE,
              "create-only claims of unique names (rules, jobs, presets) and the first admin")
COLUMNS_CONFIG = _doc("config/columns", "core.schema", STATE,
                      "the column configuration: display names, order, visibility")
RULES = _doc("rules/", "core.rules.exclusion", STATE, "exclusion rules, one per id")
PRESETS = _doc("presets/", "core.rules.presets", STATE, "saved condition presets, per owner")
RUNS = _doc("runs/", "core.runs.records", STATE, "run records: who, when, counts, outcome")
RUN_SEQUENCE = _doc("sequences/run_id", "core.runs.records", STATE, "the next run id")
DATA_VERSION = _doc("meta/data_version", "core.runs.records", DERIVED,
                    "when published data last changed: readers' cache key (any new value works)")
# The Parquet run layout's own keys (storage cannot import this module, so it spells them).
COMPACTION_MANIFEST = _doc("meta/compaction/colors", "storage.parquet_layout", DERIVED,
                           "which runs the compacted copy of the colors covers")
SAVED_SEARCHES = _doc("searches/saved/", "core.reads.saved_searches", STATE,
                      "each user's saved searches")
SEARCH_HISTORY = _doc("searches/history/", "core.reads.saved_searches", STATE,
                      "each user's recent searches")
USERS = _doc("users/", "core.identity.user_records", STATE,
             "users: profile, role, sectors, password hash and history, lockout, logins")
AUTH_CONFIG = _doc("config/auth", "core.identity.login", STATE, "the self-registration switch")
RESET_TOKENS = _doc("reset_tokens/", "core.identity.login", STATE,
                    "password-reset links by the SHA-256 of the token (single use, expiring)")
REVOKED_COOKIES = _doc("revoked_cookies/", "core.identity.login", STATE,
                       "re-login cookies ended by logging out, per user")
COLUMN_PROFILES = _doc("config/column_profiles", "core.identity.column_profiles", STATE,
                       "named column profiles a user may be given")
LEGACY_COOKIE_KEY = _doc("config/cookie_key", "core.identity.login_key", SECRET,
                         "where versions before issue 10 kept the login cookie key: deleted "
                         "when found; the key lives in the secrets file")
SMTP_CONFIG = _doc("config/smtp", "core.alerts.email", STATE,
                   "the SMTP server (never its password: that comes from secrets)")
EMAIL_CONFIG = _doc("config/email", "core.alerts.templates", STATE,
                    "run emails: switches, recipients, templates")
WEBHOOKS_CONFIG = _doc("config/webhooks", "core.alerts.webhooks", STATE,
                       "Teams/Slack webhooks (URLs from secrets win over stored ones)")
NOTIFICATIONS = _doc("notifications/", "core.alerts.bell", STATE, "each user's in-app bell")
WATCHLISTS = _doc("watchlists/users/", "core.alerts.watchlists", STATE, "each user's watchlist")
WATCHLIST_CHECKS = _doc("watchlists/checked/", "core.alerts.watchlists", STATE,
                        "one marker per run whose watchlist alerts went out (never twice)")
BUFFER = _doc("buffer/", "core.intake.buffer", STATE, "upload buffer entries and their status")
BUFFER_SEQUENCE = _doc("sequences/buffer_id", "core.intake.buffer", STATE,
                       "the next buffer entry id")
MANUAL_SESSIONS = _doc("sessions/", "core.manual.sessions", STATE,
                       "each analyst's Manual Color session (its frames are blobs)")
JOBS = _doc("jobs/", "core.automation.jobs", STATE, "automation jobs, one per id")
SOURCE_WATERMARKS = _doc("sources/watermarks/", "core.intake.watermarks", STATE,
                         "each job's SQL source watermarks: the newest value its last "
                         "published run read (the next run reads only newer rows)")
TRIGGERS = _doc("triggers/", "core.automation.jobs", STATE,
                "Run now requests queued for the scheduler")
PENDING_WORKBOOKS = _doc("workbooks/pending/", "core.runs.workbooks", STATE,
                         "published runs whose output workbook is not built yet, and who builds "
                         "it (the scheduler rebuilds one whose builder died)")
SCHEDULE_STATE = _doc("scheduler/state/", "core.automation.slots", STATE,
                      "each job's last handled slot (so no slot runs twice or is lost)")
HEARTBEAT = _doc("scheduler/heartbeat", "core.automation.scheduler", DERIVED,
                 "the scheduler's last sign of life and errors, rewritten every tick")
CURRENT_RUN = _doc("scheduler/current", "core.automation.job_runs", DERIVED,
                   "the job run in progress (removed when it ends)")
SCHEDULER_LOG = _doc("scheduler/log", "core.automation.log_tail", DERIVED,
                     "the scheduler's last log lines")
AUDIT_CHAIN_HEAD = _doc("audit/chain_head", "core.audit_chain", STATE,
                        "the audit trail's last entry, its place and hash (the chain's head)")
LEASES = _doc("leases/", "core.automation.leases", DERIVED,
              "who runs jobs now; taken again by a running scheduler")
STORE_COPY = _doc("meta/store_copy", "core.compliance.store_copy", DERIVED,
                  "on a store being filled by `store copy`: written first, removed once the copy "
                  "is verified, so a copy that stopped half-way says so")
SCHEDULER_PAUSE = _doc("scheduler/paused", "core.automation.pause", DERIVED,
                       "while a restore runs: the scheduler starts no job (expires by itself)")
BACKUP_SCHEDULE = _doc("config/backups", "core.compliance.backup_schedule", STATE,
                       "scheduled backups: when (cron, timezone) and how many daily, weekly and "
                       "monthly ones are kept")
REPORT_SCHEDULE = _doc("config/compliance_report", "core.compliance.report_schedule", STATE,
                       "the scheduled compliance report: when (cron, timezone), the days it "
                       "covers and how many are kept")
BACKUP_INDEX = _doc("backups/", "core.compliance.backups", ARCHIVE,
                    "each backup's manifest summary (who, when, why, counts, size, duration)")

# -- tables ---------------------------------------------------------------------------------------
COLORS = _add(TABLES, "colors", "core.runs.records", STATE, "published colors, per run")
EXCLUDED = _add(TABLES, "excluded", "core.runs.records", STATE, "rows rules excluded, per run")
QUARANTINED = _add(TABLES, "quarantined", "core.runs.records", STATE,
                   "rows validation refused, per run")
COLORS_COMPACT = _add(TABLES, "colors_compact", "storage.parquet_layout", DERIVED,
                      "the colors of many runs, compacted for lookups")
COLORS_ROLLUP = _add(TABLES, "colors_rollup", "storage.parquet_layout", DERIVED,
                     "the dashboard's daily aggregates of the compacted runs")
COLORS_LATEST = _add(TABLES, "colors_latest", "storage.parquet_layout", DERIVED,
                     "each CUSIP and sector's newest parent in the compacted runs (latest parents)")
AUDIT = _add(TABLES, "audit", "core.audit", STATE, "the change log of every area")
ACCESS_LOG = _add(TABLES, "access_log", "core.access_events", STATE,
                  "who searched, viewed and exported what")
EMAIL_LOG = _add(TABLES, "email_log", "core.alerts.templates", STATE, "every email sent or not")

# -- blobs ----------------------------------------------------------------------------------------
OUTPUTS = _add(BLOBS, "outputs/", "core.runs.records", STATE, "each run's output workbook")
BUFFER_FILES = _add(BLOBS, "buffer/", "core.intake.buffer", STATE,
                    "files waiting in the upload buffer")
SESSION_FRAMES = _add(BLOBS, "sessions/", "core.manual.sessions", STATE,
                      "the working and loaded rows of Manual Color sessions (Parquet)")
COMPLIANCE_REPORTS = _add(BLOBS, "reports/compliance/", "core.compliance.report_schedule", STATE,
                          "compliance reports the scheduler made (.xlsx and .pdf of a period)")
BACKUPS = _add(BLOBS, "backups/", "core.compliance.backups", ARCHIVE,
               "backup archives (zip: manifest, documents, blobs, table partitions, runs' rows)")


def entry_for(key: str, part: str = DOCUMENTS) -> Entry | None:
    """The entry a document key, table name (part=TABLES) or blob key (part=BLOBS) belongs to;
    None for a key the catalog does not know."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, not {part!r}")
    return next((e for e in ENTRIES if e.part == part and e.holds(key)), None)


def entries(part: str | None = None, kind: str | None = None) -> list[Entry]:
    """The entries of a part and/or kind, in catalog order."""
    return [e for e in ENTRIES if part in (None, e.part) and kind in (None, e.kind)]


def state_entries(part: str | None = None) -> list[Entry]:
    """What a backup must carry."""
    return entries(part, STATE)


def derived_entries(part: str | None = None) -> list[Entry]:
    """What a backup may skip: the product rebuilds it."""
    return entries(part, DERIVED)
