"""The dependency rule of DESIGN.md §2: pages → core → storage, checked on every module."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPOSITION_ROOTS = {"core/__main__.py", "core/scheduler.py"}


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _violations() -> list[str]:
    found = []
    for path in sorted((ROOT / "storage").rglob("*.py")):
        for name in _imports(path):
            if name.split(".")[0] in ("core", "pages", "streamlit"):
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    for path in sorted((ROOT / "core").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        for name in _imports(path):
            top = name.split(".")[0]
            if top in ("streamlit", "pages"):
                found.append(f"{rel} imports {name}")
            if name in ("storage.local", "storage.memory", "storage.s3", "storage.sql") and (
                rel not in COMPOSITION_ROOTS
            ):
                found.append(f"{rel} imports the concrete backend {name}")
    for path in [*sorted((ROOT / "pages").rglob("*.py")), ROOT / "app.py"]:
        for name in _imports(path):
            if name.split(".")[0] in ("boto3", "sqlalchemy", "duckdb", "storage.local"):
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


def test_layers_import_only_downwards():
    assert _violations() == []
