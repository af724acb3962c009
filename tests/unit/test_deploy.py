"""deploy/: the systemd units, the environment file example and the nginx example pass
deploy/verify.sh against this checkout (systemd-analyze verify and nginx -t when installed), and
verify.sh fails on a broken copy, naming each problem."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VERIFY = ROOT / "deploy" / "verify.sh"


def _verify(deploy_dir: Path | None = None) -> tuple[int, list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPULSE_")}
    if deploy_dir is not None:
        env["MARKETPULSE_DEPLOY_DIR"] = str(deploy_dir)
    done = subprocess.run(["sh", str(VERIFY), str(ROOT)], capture_output=True, text=True,
                          env=env, check=False, timeout=120)
    return done.returncode, (done.stdout + done.stderr).splitlines()


def _skipped_or(tool: str, passed: str, skipped: str) -> str:
    return passed if shutil.which(tool) else skipped


def test_the_deploy_files_pass_verify_sh():
    code, lines = _verify()
    assert (code, lines) == (0, [
        "check_units: 2 units and marketpulse.env.example OK",
        _skipped_or("systemd-analyze", "systemd-analyze verify: 2 units OK",
                    "systemd-analyze not found: the units were checked by check_units.py only"),
        _skipped_or("nginx", "nginx -t: nginx/marketpulse.conf OK",
                    "nginx not found: nginx/marketpulse.conf was not checked by nginx -t "
                    "(set NGINX_BIN=/path/to/nginx)"),
    ])


def test_verify_sh_names_what_is_broken(tmp_path):
    broken = tmp_path / "deploy"
    shutil.copytree(ROOT / "deploy", broken)
    app = broken / "marketpulse-app.service"
    text = app.read_text()
    text = text.replace("User=marketpulse", "User=root")
    text = text.replace("-m streamlit run app.py", "-m streamlit run main.py")
    text = text.replace("-m core init", "-m core.nowhere init")
    app.write_text(text.split("[Install]")[0])
    scheduler = broken / "marketpulse-scheduler.service"
    scheduler.write_text(scheduler.read_text().replace(".venv/bin/python", ".venv/bin/pythonX"))
    env = broken / "marketpulse.env.example"
    env.write_text(env.read_text() + "MARKETPULSE_SMTP_PASSWORD=hunter2\n"
                   "MARKETPULSE_STORE_URLL=data\nSTREAMLIT_SERVER_ADDRESS=0.0.0.0\n")
    lines_before = len(env.read_text().splitlines())

    code, lines = _verify(broken)

    assert code == 1
    assert lines[:8] == [
        "marketpulse-app.service: [Install] has no WantedBy=",
        "marketpulse-app.service: User= is root: run as the marketpulse system user",
        f"marketpulse-app.service: ExecStartPre: {ROOT}/.venv/bin/python finds no module "
        f"core.nowhere from {ROOT}",
        f"marketpulse-app.service: ExecStart: {ROOT}/main.py does not exist",
        f"marketpulse-scheduler.service: ExecStart: {ROOT}/.venv/bin/pythonX is not an "
        "executable file",
        f"marketpulse.env.example:{lines_before - 2}: MARKETPULSE_SMTP_PASSWORD is a secret: it "
        "goes in secrets.toml",
        f"marketpulse.env.example:{lines_before - 1}: MARKETPULSE_STORE_URLL is not a setting "
        "(README lists them)",
        f"marketpulse.env.example:{lines_before}: the example listens on 0.0.0.0: keep loopback "
        "the default",
    ]
    if shutil.which("systemd-analyze"):
        assert lines[8] == "systemd-analyze verify found problems:"
        assert (f"marketpulse-scheduler.service: Command {ROOT}/.venv/bin/pythonX is not "
                "executable: No such file or directory") in lines[9:]
