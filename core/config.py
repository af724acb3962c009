"""Settings declared once (name, default, type, help, secret) and loaded from the environment over
.streamlit/secrets.toml over the defaults; bad values fail at start-up with the dotted key and a
hint."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ConfigError

ENV_PREFIX = "MARKETPULSE_"
SECRETS_PATH = Path(".streamlit/secrets.toml")
SECRETS_FILE_ENV = "MARKETPULSE_SECRETS_FILE"  # another secrets file (tests, several instances)
# A SQL colors source's URL, password included, by the name a job gives (core.intake.sql_source):
# sources.<name>.url in the secrets file or MARKETPULSE_SOURCES_<NAME>_URL; never in the store.
SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_SOURCE_KEY = re.compile(r"^sources\.([a-z][a-z0-9_]{0,39})\.url$")
_SOURCE_ENV = re.compile(rf"^{ENV_PREFIX}SOURCES_([A-Z][A-Z0-9_]{{0,39}})_URL$")
_RETIRED = {"sources.sql_url", "sources.sql_password"}  # before named sources (issue 12)


@dataclass(frozen=True)
class Setting:
    key: str  # dotted, e.g. "store.url"; environment variable MARKETPULSE_STORE_URL
    default: Any
    type: type
    help: str
    secret: bool = False
    choices: tuple[Any, ...] = ()

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.key.replace(".", "_").upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("store.url", "data", str,
            "Where MarketPulse keeps its state: a folder, s3://bucket/prefix or a SQLAlchemy URL"),
    Setting("s3.endpoint_url", "", str,
            "S3 API address of an s3:// store on MinIO, Ceph or a test server "
            "(http://127.0.0.1:9000); empty: AWS. The store URL's ?endpoint_url= wins"),
    Setting("s3.region", "", str,
            "Region of the S3 store's bucket; empty: the AWS chain's (AWS_REGION, ~/.aws/config)"),
    Setting("s3.access_key_id", "", str,
            "Access key of the S3 store (only from secrets or environment); empty: the standard "
            "AWS chain (AWS_* variables, ~/.aws, the instance's role)", secret=True),
    Setting("s3.secret_access_key", "", str,
            "Secret key belonging to s3.access_key_id (only from secrets or environment)",
            secret=True),
    Setting("s3.cache_dir", "", str,
            "Folder of this host's read copy of the S3 store's Parquet parts (rebuildable, "
            "may be deleted any time); empty: ~/.cache/marketpulse/s3"),
    Setting("sql.cache_dir", "", str,
            "Folder of this host's read copy of a SQL store's runs as Parquet (rebuildable, may "
            "be deleted any time); empty: ~/.cache/marketpulse/sql"),
    Setting("app.base_url", "http://localhost:8501", str,
            "The address users open; used in links sent by email"),
    Setting("demo", True, bool, "Load demo colors into an empty store on `make run`"),
    Setting("ranking.date_column", "DATE", str,
            "Date that ranks colors first: DATE (extract date) or DATE_1 (date received)",
            choices=("DATE", "DATE_1")),
    Setting("validation.cusip_check_blocking", False, bool,
            "Quarantine rows whose CUSIP check digit is wrong (otherwise a warning)"),
    Setting("validation.px_min", 10.0, float, "PX below this is flagged as a warning"),
    Setting("validation.px_max", 130.0, float, "PX above this is flagged as a warning"),
    Setting("validation.date_min", "1990-01-01", str,
            "DATE or DATE_1 before this day (YYYY-MM-DD) quarantines the row"),
    Setting("validation.date_max_years_ahead", 1, int,
            "DATE or DATE_1 more than this many years after today quarantines the row"),
    Setting("diff.threshold_pct", 2.0, float,
            "PERCENT_DIFF above which DIFF_STATUS is 'Significant Difference'"),
    Setting("diff.equity_threshold_pct", 5.0, float, "The same threshold for the equity sectors"),
    Setting("diff.equity_sectors", "US_Equity_2.0,US_MM_Equity_2.0", str,
            "Comma-separated sectors that use the equity threshold"),
    Setting("upload.max_mb", 50, int,
            "Largest file accepted through the app (upload, buffer), in MB; 0 = no limit"),
    Setting("upload.max_unpacked_mb", 512, int,
            "Largest total unpacked size of an .xlsx's parts, in MB (zip bombs); 0 = no limit"),
    Setting("upload.max_cells", 25_000_000, int,
            "Most cells (rows × columns) a sheet or parquet file may span; 0 = no limit"),
    Setting("upload.read_memory_mb", 4096, int,
            "Memory a file's reading child process may use beyond its start, in MB; 0 = no limit"),
    Setting("upload.read_seconds", 300.0, float,
            "Wall-clock limit of a file's reading child process, in seconds; 0 = no limit"),
    Setting("upload.max_cell_chars", 32767, int,
            "Longest text cell read, in characters (at most Excel's 32767); a longer one "
            "quarantines its row rather than being cut"),
    Setting("auth.cookie_key", "", str,
            "Key that signs the login cookie (≥ 32 characters); when empty, generated into "
            ".streamlit/secrets.toml (mode 0600) on first run; never kept in the store",
            secret=True),
    Setting("auth.session_hours", 8.0, float, "Idle sessions expire after this many hours"),
    Setting("auth.lockout_attempts", 5, int, "Failed logins that lock an account"),
    Setting("auth.lockout_minutes", 15, int, "How long a locked account stays locked"),
    Setting("smtp.password", "", str, "SMTP password (only from secrets or environment)",
            secret=True),
    Setting("scheduler.grace_minutes", 15, int,
            "A slot missed while the scheduler was down still runs at start if it is at most this "
            "many minutes old; otherwise it is recorded as missed"),
    Setting("scheduler.lease_seconds", 30, int,
            "How long the scheduler lease lasts without renewal; a standby takes over this long "
            "after the holder dies"),
    Setting("scheduler.tick_seconds", 1.0, float,
            "How often the scheduler checks for due jobs and triggers and writes its heartbeat"),
    Setting("scheduler.compact", True, bool,
            "After its jobs, the scheduler adds newly published runs to the CUSIP-clustered copy "
            "search reads (a small delta; a full rewrite when it outgrows its share; "
            "`python -m core compact` by hand)"),
    Setting("scheduler.timezone", "Asia/Karachi", str, "Default timezone for new jobs"),
    Setting("runs.stale_seconds", 300, int,
            "A running run whose process is on another host counts as dead (abandoned, its partial "
            "data removed) when its heartbeat, refreshed every tenth of this, is older; on this "
            "host a dead process is noticed at once"),
    Setting("sources.sql_row_limit", 500_000, int,
            "Most rows a SQL source reads in one run (a job's own row limit wins); the rest "
            "is read by the next runs, oldest first"),
    Setting("slack.webhook", "", str, "Slack incoming-webhook URL; overrides the stored one",
            secret=True),
    Setting("teams.webhook", "", str, "Teams incoming-webhook URL; overrides the stored one",
            secret=True),
)
BY_KEY = {s.key: s for s in SETTINGS}


def _coerce(setting: Setting, raw: Any) -> Any:
    want = setting.type
    if want is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(setting.key, f"{raw!r} is not a yes/no value", "use true or false")
    try:
        value = want(raw)
    except (TypeError, ValueError):
        raise ConfigError(setting.key, f"{raw!r} is not a {want.__name__}", setting.help) from None
    if setting.choices and value not in setting.choices:
        raise ConfigError(
            setting.key, f"{value!r} is not allowed", "choose one of " + ", ".join(setting.choices)
        )
    return value


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def source_key(name: str) -> str:
    """Where a SQL source's URL is set: "sources.<name>.url or MARKETPULSE_SOURCES_<NAME>_URL"."""
    return f"sources.{name}.url in the secrets file or {ENV_PREFIX}SOURCES_{name.upper()}_URL"


class Settings:
    """Validated settings; secrets (and the SQL sources' URLs) are kept out of repr."""

    def __init__(self, values: dict[str, Any], sources: Mapping[str, str] | None = None) -> None:
        self._values = values
        self._sources = dict(sources or {})

    def source_url(self, name: str) -> str | None:
        """The URL (password included) of the SQL source `name`; None when it is not set."""
        return self._sources.get(name) or None

    def source_names(self) -> list[str]:
        """The SQL sources this process has a URL for."""
        return sorted(n for n, url in self._sources.items() if url)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __repr__(self) -> str:
        shown = {k: ("***" if BY_KEY[k].secret and v else v) for k, v in self._values.items()}
        return f"Settings({shown})"

    def override(self, **values: Any) -> Settings:
        """A copy with some settings replaced (validated), e.g. a CLI flag over the configuration.
        Keys use _ for dots: override(ranking_date_column="DATE_1")."""
        updated = dict(self._values)
        for name, raw in values.items():
            setting = next(s for s in SETTINGS if s.key.replace(".", "_") == name)
            updated[setting.key] = _coerce(setting, raw)
        return Settings(updated, self._sources)

    def public(self) -> dict[str, Any]:
        """Values safe to show on a page: secrets masked."""
        return {k: ("••••••" if BY_KEY[k].secret and v else v) for k, v in self._values.items()}


def store_options(settings: Settings) -> dict[str, Any]:
    """The settings open_store passes to the store's backend (its s3.* and sql.* sections), by
    dotted name."""
    return {s.key: settings[s.key] for s in SETTINGS if s.key.startswith(("s3.", "sql."))}


def secrets_path(environ: Mapping[str, str] | None = None) -> Path:
    """The secrets file: MARKETPULSE_SECRETS_FILE when set, else .streamlit/secrets.toml."""
    environ = os.environ if environ is None else environ
    return Path(environ[SECRETS_FILE_ENV]) if environ.get(SECRETS_FILE_ENV) else SECRETS_PATH


def read_secrets_file(path: Path | None = None) -> dict[str, Any]:
    """The secrets TOML as a dict ({} when absent); a syntax error names the file."""
    path = secrets_path() if path is None else path
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None


def load_settings(
    secrets: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Environment over secrets over defaults. Unknown secrets keys (outside the [connections] and
    other library sections we do not own) fail with the key and a hint. The SQL sources' URLs
    (sources.<name>.url, MARKETPULSE_SOURCES_<NAME>_URL) are kept apart: Settings.source_url."""
    environ = os.environ if environ is None else environ
    flat = _flatten(secrets or {})
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key in flat:
        if key in _RETIRED:
            raise ConfigError(key, "no longer used", "give each SQL source its URL, password "
                              "included, as sources.<name>.url and name it in the job")
        if found := _SOURCE_KEY.match(key):
            sources[found.group(1)] = str(flat[key])
            continue
        if key not in BY_KEY and not key.startswith(("connections.", "streamlit.")):
            close = [s.key for s in SETTINGS if s.key.split(".")[-1] == key.split(".")[-1]]
            hint = f"did you mean {close[0]}?" if close else "see the settings table in README.md"
            raise ConfigError(key, "unknown setting", hint)
    for setting in SETTINGS:
        if setting.env in environ:
            raw = environ[setting.env]
        elif setting.key in flat:
            raw = flat[setting.key]
        else:
            raw = setting.default
        values[setting.key] = _coerce(setting, raw)
    for name, value in environ.items():
        if found := _SOURCE_ENV.match(name):
            sources[found.group(1).lower()] = value
    return Settings(values, sources)
