"""Regenerate the hostile corpus: `python tests/data/hostile/build.py` writes every file that the
sibling `files_*.py` modules declare (name, bytes, refused, message fragment) into this folder."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _modules() -> list:
    modules = []
    for path in sorted(HERE.glob("files_*.py")):
        spec = importlib.util.spec_from_file_location(f"hostile_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules.append(module)
    return modules


def corpus() -> list[tuple[str, bytes, bool, str]]:
    """Every declared file: (file name, bytes, refused, message fragment); names are unique."""
    files = [entry for module in _modules() for entry in module.files()]
    names = [name for name, *_ in files]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise SystemExit(f"two files_*.py modules declare the same file: {duplicated}")
    return files


def main() -> int:
    files = corpus()
    for name, data, _refused, _fragment in files:
        (HERE / name).write_bytes(data)
    print(f"wrote {len(files)} file(s), {sum(len(d) for _, d, _, _ in files):,} bytes, to {HERE}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parents[2]))  # the project root, for modules that import core
    sys.exit(main())
