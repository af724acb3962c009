"""The catalog of stored keys (core/catalog.py): its entries are sound, modules name their keys
through it, and a broad workflow writes no key it does not know."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from core import catalog
from core.catalog import ARCHIVE, BLOBS, KINDS, PARTS, SECRET, STATE, TABLES, Entry, entry_for
from storage import run_tables
from storage.base import check_key, check_table

ROOT = Path(__file__).resolve().parents[2]


def _entry_names() -> dict[Entry, str]:
    return {value: name for name, value in vars(catalog).items() if isinstance(value, Entry)}


# -- the catalog itself ----------------------------------------------------------------------------
def test_every_entry_has_a_valid_part_kind_and_key():
    for e in catalog.ENTRIES:
        assert (e.part in PARTS, e.kind in KINDS, bool(e.what)) == (True, True, True), e
        if e.part == TABLES:
            assert check_table(e.key) == e.key
        else:
            assert check_key(e.key.rstrip("/")) == e.key.rstrip("/")


def test_no_entry_overlaps_another_of_its_part():
    overlaps = [(a.key, b.key) for a in catalog.ENTRIES for b in catalog.ENTRIES
                if a is not b and a.part == b.part and (a.holds(b.key) or b.key == a.key)]
    assert overlaps == []


def test_every_entry_is_named_once_in_the_module():
    assert sorted(_entry_names().values()) == sorted(set(_entry_names().values()))
    assert len(_entry_names()) == len(catalog.ENTRIES)


def test_every_owner_module_exists_and_names_its_entries_through_the_catalog():
    names = _entry_names()
    missing = []
    for e in catalog.ENTRIES:
        module = importlib.import_module(e.owner)
        source = Path(module.__file__).read_text()
        # storage cannot import core: a storage owner spells the key it keeps.
        used = f'"{e.key}"' if e.owner.startswith("storage.") else f"catalog.{names[e]}"
        if used not in source:
            missing.append(f"{e.owner} does not use {used}")
    assert missing == []


def test_the_run_table_port_writes_the_tables_the_catalog_names():
    assert (catalog.COLORS.key, catalog.EXCLUDED.key,
                                     catalog.QUARANTINED.key) == run_tables.RUN_TABLES
    assert [e.owner for e in catalog.ENTRIES if e.owner.startswith("storage.")] == [
        "storage.parquet_layout"] * 4


def test_entry_for_answers_the_entry_of_a_key_in_each_part():
    assert entry_for("users/ayesha") is catalog.USERS
    assert entry_for("config/smtp") is catalog.SMTP_CONFIG
    assert entry_for("config/smtp/x") is None  # an exact key holds nothing below it
    assert entry_for("runs/00000001") is catalog.RUNS
    assert entry_for("colors", TABLES) is catalog.COLORS
    assert entry_for("colors_compact", TABLES) is catalog.COLORS_COMPACT
    assert entry_for("buffer/00000001/colors.xlsx", BLOBS) is catalog.BUFFER_FILES
    assert entry_for("buffer/00000001") is catalog.BUFFER
    assert entry_for("outputs/run-00000001.xlsx", BLOBS) is catalog.OUTPUTS
    assert entry_for("outputs/run-00000001.xlsx") is None  # a blob prefix is no document prefix
    assert entry_for("nowhere/known") is None
    with pytest.raises(ValueError, match="part must be one of"):
        entry_for("users/ayesha", "files")


def test_state_and_derived_entries_split_what_a_backup_carries():
    state = catalog.state_entries()
    derived = catalog.derived_entries()
    assert {e.kind for e in state} == {STATE}
    archive = catalog.entries(kind=ARCHIVE)
    assert set(state) | set(derived) | set(catalog.entries(kind=SECRET)) | set(archive) == set(
        catalog.ENTRIES)
    assert archive == [catalog.BACKUP_INDEX, catalog.BACKUPS]  # never inside a backup or a copy
    assert catalog.COLORS in catalog.state_entries(TABLES)
    assert catalog.COLORS_COMPACT in derived
    assert catalog.HEARTBEAT in derived
    assert catalog.entries(kind=SECRET) == [catalog.LEGACY_COOKIE_KEY]


def test_an_entry_knows_its_package():
    assert (catalog.USERS.package, catalog.CLAIMS.package, catalog.AUDIT.package) == (
        "identity", "core", "core")


# -- no literal keys outside the catalog ----------------------------------------------------------
def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


TABLE_CALLS = {"append", "scan", "partitions", "register", "delete_partition", "append_query",
               "compact"}


def _literal_keys(path: Path, root: Path = ROOT) -> list[str]:
    """Literals in a module that spell a catalog key: a string (or an f-string's head) starting
    with a document or blob key, a table name passed to a Store table call, or SQL naming a
    table after FROM or JOIN. Docstrings may name keys."""
    tree = ast.parse(path.read_text())
    skip = _docstrings(tree)
    prefixes = [e.key for e in catalog.ENTRIES if e.part != TABLES]
    tables = {e.key for e in catalog.ENTRIES if e.part == TABLES}
    sql = re.compile(r"\b(?:FROM|JOIN)\s+(" + "|".join(sorted(tables)) + r")\b", re.IGNORECASE)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
                node.func.attr in TABLE_CALLS):
            found += [f"{path.relative_to(root)}:{node.lineno} table {a.value!r}"
                      for a in [*node.args, *(k.value for k in node.keywords)]
                      if isinstance(a, ast.Constant) and a.value in tables]
        if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0],
                                                                           ast.Constant):
            skip.add(id(node.values[0]))
            head = str(node.values[0].value)
            texts = [str(v.value) for v in node.values if isinstance(v, ast.Constant)]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and (
                id(node) not in skip):
            head, texts = node.value, [node.value]
        else:
            continue
        if any(head == p or head.startswith(p if p.endswith("/") else p + "/") for p in prefixes):
            found.append(f"{path.relative_to(root)}:{node.lineno} {head!r}")
        found += [f"{path.relative_to(root)}:{node.lineno} SQL {m.group(0)!r}"
                  for text in texts for m in sql.finditer(text)]
    return found


def test_the_literal_check_finds_keys_tables_and_sql(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text('"""Docstrings may say users/ and config/smtp."""\n'
                     'a = "users/"\nb = f"runs/{1:08d}"\nc = "config/smtp"\n'
                     'store.scan("colors")\nd = f"SELECT * FROM colors WHERE {x}"\n'
                     'e = {"excluded": 1}\nf = "users"\n')
    assert [hit.split(" ", 1)[1] for hit in _literal_keys(probe, tmp_path)] == [
        "'users/'", "'runs/'", "'config/smtp'", "table 'colors'", "SQL 'FROM colors'"]


def test_no_module_spells_a_stored_key_outside_the_catalog():
    sources = [*sorted((ROOT / "core").rglob("*.py")), *sorted((ROOT / "pages").rglob("*.py")),
               ROOT / "app.py"]
    hits = [hit for path in sources if path != ROOT / "core" / "catalog.py"
            for hit in _literal_keys(path)]
    assert hits == []
