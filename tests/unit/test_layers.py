"""The dependency rule of DESIGN.md §2: pages → core → storage, checked on every module."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPOSITION_ROOTS = {"core/__main__.py", "core/scheduler.py"}
# core's packages in dependency order (core/__init__.py): a module imports only its own package,
# the base modules directly in core/ and the packages before its own.
PACKAGES = ["ingest", "rules", "runs", "reads", "identity", "alerts", "intake", "manual",
            "automation", "compliance", "cli"]


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


def _package(module: str) -> int:
    """Position of a core module's package in PACKAGES; -1 for the base modules."""
    parts = module.split(".")
    return PACKAGES.index(parts[1]) if len(parts) > 2 and parts[1] in PACKAGES else -1


def _package_violations() -> list[str]:
    found = []
    for path in sorted((ROOT / "core").rglob("*.py")):
        rel = path.relative_to(ROOT)
        if str(rel) in COMPOSITION_ROOTS:
            continue
        own = _package(".".join(rel.with_suffix("").parts))
        if rel.parent == ROOT / "core" or rel.parent.name == "core":
            own = -1
        for name in _imports(path):
            if name.startswith("core.") and _package(name) > own:
                found.append(f"{rel} imports {name}")
            if name.startswith("core.") and _package(name) != own and any(
                    part.startswith("_") for part in name.split(".")[1:]):
                found.append(f"{rel} imports the private module {name}")
    return found


def _private_names_across_packages() -> list[str]:
    found = []
    for path in sorted((ROOT / "core").rglob("*.py")):
        rel = path.relative_to(ROOT)
        own = _package(".".join(rel.with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                    and node.module.startswith("core.") and _package(node.module) != own):
                found += [f"{rel} imports {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_")]
    return found


# What core may import of storage: the store, its errors and the run-table port (DESIGN.md §3);
# never a backend or the Parquet layout behind the port.
STORAGE_FOR_CORE = {"storage", "storage.base", "storage.errors", "storage.run_tables"}


def test_core_reaches_storage_only_through_the_store_and_the_run_table_port():
    found = []
    for path in sorted((ROOT / "core").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        found += [f"{rel} imports {name}" for name in _imports(path)
                  if name.split(".")[0] == "storage" and name not in STORAGE_FOR_CORE
                  and rel not in COMPOSITION_ROOTS]
    assert found == []


def test_core_packages_import_only_packages_before_them():
    assert _package_violations() == []


def test_core_packages_share_only_public_names():
    assert _private_names_across_packages() == []


def test_layers_import_only_downwards():
    assert _violations() == []
