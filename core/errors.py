"""Exceptions of the core engine. Expected outcomes (validation problems, excluded rows) are values;
these mean "cannot continue", and each carries what the user needs to fix it.

MarketPulseError
 ├── ConfigError            a setting with a bad value (names the dotted key and a hint)
 ├── FileProblem            a whole file cannot be used; nothing is stored
 │    ├── UnreadableFile    not a spreadsheet, corrupt, password protected, empty
 │    ├── MissingColumns    required columns absent (names them and the headers found)
 │    └── BackupRefused     a backup archive that is damaged, fails a checksum or is too new
 ├── InvalidRule            a rule that cannot be saved (names the rule and the condition)
 ├── InvalidInput           any other bad value from a user (names the field)
 ├── PermissionDenied       the acting user's role may not do this
 ├── NotFound               a run, rule, user... that does not exist
 ├── Conflict               the thing changed since it was read, or a run is already running
 │    └── ChangedMeanwhile  a settings document saved by someone else since the editor loaded it
 └── PublishRefused         the publish gate found a broken invariant; nothing was published
"""

from __future__ import annotations


class MarketPulseError(Exception):
    """Root of every core failure; pages show str(exc) to the user."""


class ConfigError(MarketPulseError):
    def __init__(self, key: str, message: str, hint: str = "") -> None:
        text = f"setting {key}: {message}" + (f" ({hint})" if hint else "")
        super().__init__(text)
        self.key = key


class FileProblem(MarketPulseError):
    """A whole-file problem: one message naming the file and what to do."""

    def __init__(self, file: str, message: str, *, sheet: str | None = None) -> None:
        where = f"{file}" + (f", sheet {sheet!r}" if sheet else "")
        super().__init__(f"{where}: {message}")
        self.file = file
        self.sheet = sheet
        self.detail = message


class UnreadableFile(FileProblem):
    pass


class MissingColumns(FileProblem):
    def __init__(
        self, file: str, missing: list[str], found: list[str], *, sheet: str | None = None
    ) -> None:
        message = (
            f"required column(s) missing: {', '.join(missing)}. "
            f"Headers found: {', '.join(map(str, found)) or 'none'}. "
            "Rename the headers or add an alias under Settings → Columns."
        )
        super().__init__(file, message, sheet=sheet)
        self.missing = missing
        self.found = found


class BackupRefused(FileProblem):
    """A backup archive that cannot be trusted or read: nothing is restored from it."""


class InvalidRule(MarketPulseError):
    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"rule {rule!r}: {message}")
        self.rule = rule


class InvalidInput(MarketPulseError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class PermissionDenied(MarketPulseError):
    def __init__(self, user: str, action: str) -> None:
        super().__init__(f"{user} is not allowed to {action}")
        self.user = user
        self.action = action


class NotFound(MarketPulseError):
    pass


class Conflict(MarketPulseError):
    pass


class ChangedMeanwhile(Conflict):
    """A save from a stale version was refused: nothing was written, the other change stands."""

    def __init__(self, what: str, by: str | None = None, at: str | None = None) -> None:
        known = f" (by {by} at {at[:16].replace('T', ' ')} UTC)" if by and at else ""
        super().__init__(f"{what} changed meanwhile{known}: reload and apply your change again")
        self.what = what
        self.by = by
        self.at = at


class PublishRefused(MarketPulseError):
    pass
