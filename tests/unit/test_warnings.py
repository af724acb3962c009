"""The suite's warning policy (pyproject's filterwarnings): a warning raised from our own code
(core, storage, pages, app and the scripts Streamlit runs as __main__) fails the test that raised
it; a third-party deprecation does not. Proven by running pytest on a small project under it."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]

# Each test raises one warning said to come from the module in its name (warn_explicit names the
# module, as warnings.warn does from the calling frame).
CASES = {
    "test_from_core": ("UserWarning", "core.ingest.readers"),
    "test_from_storage": ("RuntimeWarning", "storage.local"),
    "test_from_pages": ("FutureWarning", "pages._ui.tables"),
    "test_from_app": ("UserWarning", "app"),
    "test_from_a_page_script": ("DeprecationWarning", "__main__"),
    "test_third_party_deprecation": ("DeprecationWarning", "pandas.core.frame"),
    "test_third_party_pending_deprecation": ("PendingDeprecationWarning", "streamlit.runtime"),
    "test_third_party_user_warning": ("UserWarning", "openpyxl.reader.excel"),
    "test_module_only_named_like_ours": ("UserWarning", "corelib.util"),
}
OURS = {"test_from_core", "test_from_storage", "test_from_pages", "test_from_app",
        "test_from_a_page_script", "test_from_a_real_module"}


def _policy() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return config["tool"]["pytest"]["ini_options"]["filterwarnings"]


def test_a_warning_from_our_code_fails_its_test_and_a_third_party_deprecation_does_not(pytester):
    filters = ", ".join(json.dumps(f) for f in _policy())  # a JSON string is a TOML string
    pytester.makepyprojecttoml(f"[tool.pytest.ini_options]\nfilterwarnings = [{filters}]\n")
    # A real module of a `storage` package warning from inside a function, as code does.
    pytester.mkpydir("storage")
    pytester.path.joinpath("storage", "files.py").write_text(
        "import warnings\n\n\ndef save():\n    warnings.warn('file left open', ResourceWarning)\n")
    body = ["import warnings\n"]
    for name, (category, module) in CASES.items():
        body.append(f"def {name}():\n    warnings.warn_explicit('something', {category}, "
                    f"'{module}.py', 1, module='{module}')\n")
    body.append("def test_from_a_real_module():\n    import storage.files\n\n"
                "    storage.files.save()\n")
    pytester.makepyfile(test_policy="\n\n".join(body))

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rf")

    failed = {line.split("::")[1].split()[0] for line in result.outlines
              if line.startswith("FAILED ")}
    assert failed == OURS
    assert result.parseoutcomes() == {"failed": 6, "passed": 4, "warnings": 2}
