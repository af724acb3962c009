"""Static checks of deploy/ (run by deploy/verify.sh with the installed venv's python, so it can
ask the installed project): each systemd unit has its sections, a non-root user and commands that
exist under the install prefix (the python, the modules it runs with -m, app.py for streamlit);
the environment file example names only known settings, holds no secret and listens on loopback.
Prints one line per problem, naming the file, and exits 1 when there is any."""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

INSTALLED = "/opt/marketpulse"  # where the units expect MarketPulse: read as --prefix
REQUIRED = {"Unit": ["Description"], "Service": ["ExecStart", "User", "WorkingDirectory",
                                                  "EnvironmentFile", "Restart"],
            "Install": ["WantedBy"]}
COMMANDS = ("ExecStartPre", "ExecStart", "ExecStartPost", "ExecStop", "ExecReload")
SECRET_NAMES = re.compile(r"PASSWORD|SECRET|COOKIE_KEY|ACCESS_KEY|TOKEN|CREDENTIAL", re.I)
ENV_EXAMPLE = "marketpulse.env.example"


def _is_secret(name: str) -> bool:
    """A variable that holds a secret (MARKETPULSE_SECRETS_FILE only names where they are)."""
    return bool(SECRET_NAMES.search(name)) and not name.endswith("_FILE")


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A unit file's sections as (key, value) lists: keys may repeat (Environment=, ExecStartPre=),
    which configparser does not allow."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
        elif "=" in line and current is not None:
            key, value = line.split("=", 1)
            current.append((key.strip(), value.strip()))
        else:
            raise ValueError(f"{path.name}:{number}: not a section or key=value: {raw!r}")
    return sections


def _installed(path: str, prefix: Path) -> Path:
    """A path of the units with /opt/marketpulse read as the prefix."""
    if path == INSTALLED or path.startswith(INSTALLED + "/"):
        return prefix / path[len(INSTALLED):].lstrip("/")
    return Path(path)


def _module_found(python: Path, module: str, cwd: Path) -> bool:
    """Whether the unit's python, started in the unit's working directory, finds the module."""
    probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return subprocess.run([str(python), "-c", probe], cwd=cwd, check=False,
                          capture_output=True).returncode == 0


def check_command(name: str, value: str, cwd: Path, prefix: Path) -> list[str]:
    words = shlex.split(value.lstrip("-@:+!"))
    program = _installed(words[0], prefix)
    if not words[0].startswith("/"):
        return [f"{name} must start with an absolute path, not {words[0]!r}"]
    if not os.access(program, os.X_OK):
        return [f"{name}: {program} is not an executable file"]
    problems = []
    if "-m" in words:
        module = words[words.index("-m") + 1]
        if not _module_found(program, module, cwd):
            problems.append(f"{name}: {program} finds no module {module} from {cwd}")
        if module == "streamlit" and "run" in words:
            script = cwd / words[words.index("run") + 1]
            if not script.exists():
                problems.append(f"{name}: {script} does not exist")
    return problems


def check_unit(path: Path, prefix: Path) -> list[str]:
    try:
        sections = parse_unit(path)
    except ValueError as exc:
        return [str(exc)]
    problems = []
    for section, keys in REQUIRED.items():
        present = {k for k, _ in sections.get(section, [])}
        problems += [f"[{section}] has no {key}=" for key in keys if key not in present]
    service = sections.get("Service", [])
    values = dict(service)
    if values.get("User") in ("root", "0"):
        problems.append("User= is root: run as the marketpulse system user")
    cwd = _installed(values.get("WorkingDirectory", INSTALLED), prefix)
    if not cwd.is_dir():
        problems.append(f"WorkingDirectory {cwd} does not exist")
    for key, value in service:
        if key in COMMANDS:
            problems += check_command(key, value, cwd, prefix)
        if key == "Environment" and _is_secret(value.split("=", 1)[0]):
            problems.append(f"Environment={value.split('=', 1)[0]}: secrets go in secrets.toml")
    return [f"{path.name}: {p}" for p in problems]


def check_environment(path: Path) -> list[str]:
    """The environment file example: known settings, no secret, loopback addresses."""
    try:
        from core.config import SETTINGS
    except ImportError:  # not run by the project's python: the names are not checked
        known = None
    else:
        known = {"MARKETPULSE_" + s.key.upper().replace(".", "_") for s in SETTINGS}
        known.add("MARKETPULSE_SECRETS_FILE")
    problems = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        where = f"{path.name}:{number}"
        if _is_secret(name):
            problems.append(f"{where}: {name} is a secret: it goes in secrets.toml")
        elif name.startswith("MARKETPULSE_") and known is not None and name not in known:
            problems.append(f"{where}: {name} is not a setting (README lists them)")
        elif not name.startswith(("MARKETPULSE_", "STREAMLIT_")):
            problems.append(f"{where}: {name} is neither a MARKETPULSE_ nor a STREAMLIT_ variable")
        if name == "STREAMLIT_SERVER_ADDRESS" and not ipaddress.ip_address(value).is_loopback:
            problems.append(f"{where}: the example listens on {value}: keep loopback the default")
        if re.search(r"://[^/@\s]+:[^/@\s]+@", value):
            problems.append(f"{where}: {name} carries a password in its URL")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prefix", type=Path, required=True, help="the installed MarketPulse")
    parser.add_argument("folder", type=Path, help="the deploy folder to check")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(args.prefix))  # the settings the environment file may name
    units = sorted(args.folder.glob("*.service"))
    problems = [] if units else [f"{args.folder}: no *.service files"]
    for unit in units:
        problems += check_unit(unit, args.prefix.resolve())
    env = args.folder / ENV_EXAMPLE
    problems += check_environment(env) if env.exists() else [f"{env} is missing"]
    for line in problems:
        print(line)
    if not problems:
        print(f"check_units: {len(units)} units and {ENV_EXAMPLE} OK")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
