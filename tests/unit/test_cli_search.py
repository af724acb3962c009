"""`python -m core search` stays bounded: a long cell prints as 60 characters, an absurd --page is
a one-line error (exit 2), and a reader that goes away (`| head -1`) ends the CLI quietly (exit
141)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.__main__ import PIPE_CLOSED, main
from core.access import SYSTEM
from core.cli.demo import generate_colors
from core.config import load_settings
from core.runs.exports import write_csv
from core.runs.pipeline import process_files
from core.schema import INPUT_COLUMNS, TICKER
from storage import open_store

ROOT = Path(__file__).resolve().parents[2]
# The longest cell ingest accepts (upload.max_cell_chars; a 200 MB cell is refused at the door)
HUGE = 32_767
# Runs the CLI as its only child and prints the child's peak RSS (KB) on the last stderr line.
MEASURED = ("import resource, subprocess, sys; "
            "done = subprocess.run([sys.executable, '-m', 'core', *sys.argv[1:]]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
            "sys.exit(done.returncode)")


@pytest.fixture
def store_dir(tmp_path, monkeypatch):
    path = tmp_path / "store"
    monkeypatch.setenv("MARKETPULSE_STORE_URL", str(path))
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _publish(store_dir: Path, colors) -> None:
    process_files(open_store(str(store_dir)), SYSTEM,
                  [("colors.csv", write_csv(colors[list(INPUT_COLUMNS)]))],
                  settings=load_settings({}, {}), kind="MANUAL", trigger="cli", rules=[])


def test_the_longest_cell_prints_as_60_characters_in_a_page_of_a_few_hundred_bytes(store_dir):
    colors = generate_colors(1, seed=3)
    colors[TICKER] = "X" * HUGE
    _publish(store_dir, colors)
    cusip = colors["CUSIP"].iloc[0]
    done = subprocess.run([sys.executable, "-c", MEASURED, "search", cusip], cwd=ROOT,
                          env=_env(), capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == [f"Searched cusip {cusip}", "1 parent group(s), 1 row(s); page 1 of 1"]
    assert len(lines) == 4
    assert lines[3].split()[2] == "X" * 60 + "…"
    assert len(done.stdout.encode()) < 1024  # it was 20 MB: every line padded to the cell
    peak_mb = int(done.stderr.splitlines()[-1]) / 1024
    assert peak_mb < 512  # a 200 MB cell made it take 23 GB


def test_control_characters_in_a_cell_are_not_sent_to_the_terminal(store_dir, capsys):
    colors = generate_colors(1, seed=4)
    colors[TICKER] = "DEAL\x1b[2J\nA\tB"
    _publish(store_dir, colors)
    assert main(["search", colors["CUSIP"].iloc[0]]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert out.splitlines()[3].split()[2:5] == ["DEAL", "[2J", "A"]


@pytest.mark.parametrize(("page", "message"), [
    ("99999999999", "99999999999 is not between 1 and 1,000,000"),
    ("-3", "-3 is not between 1 and 1,000,000"),
    ("two", "'two' is not a whole number"),
])
def test_an_absurd_page_is_a_one_line_error_with_exit_2(store_dir, capsys, page, message):
    with pytest.raises(SystemExit) as stopped:
        main(["search", "ABC", "--page", page])
    assert stopped.value.code == 2
    assert capsys.readouterr().err == (
        f"python -m core search: error: argument --page: {message} (see --help)\n")


def test_a_page_past_the_last_one_is_an_error_with_exit_2(store_dir, capsys):
    _publish(store_dir, generate_colors(5, seed=5, cusips=1))
    assert main(["search", "--page", "4"]) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "error: page: page 4 is past the last page (1)\n")


def test_piping_into_head_ends_quietly_with_exit_141(store_dir):
    _publish(store_dir, generate_colors(3000, seed=6))  # 450 KB of rows: more than a pipe holds
    proc = subprocess.Popen([sys.executable, "-m", "core", "search", "--page-size", "1000"],
                            cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does once it has its line
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=120) == PIPE_CLOSED == 141
    assert first == b"537 parent group(s), 3000 row(s); page 1 of 1\n"
    assert err == b""
