"""``pip install .`` without extras, in a fresh virtualenv, then ``bridge serve`` answers
``/healthz``: the package runs on its declared runtime dependencies alone.

Cost: one virtualenv per test run; pip's wheel cache is used (never ``--no-cache-dir``), so
after the first run nothing is downloaded. The project is copied (sources and metadata only)
so that the build leaves nothing in the working tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.servers.ports import LOOPBACK, free_port, wait_for_own_listener

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "bridge", "scim", "oidc", "ad_sync", "config")


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without this run's virtualenv, PYTHONPATH or BRIDGE_* settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("BRIDGE_") and k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    return {**env, **extra}


@pytest.mark.packaging
def test_plain_install_serves_healthz(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, source / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(source)],
                             cwd=tmp_path, env=_clean_env(), capture_output=True, text=True,
                             timeout=600, check=False)
    assert install.returncode == 0, install.stderr[-4000:]
    # No test extra came along (boto3 is one): the check below is about the plain install.
    probe = subprocess.run([str(python), "-c", "import boto3"], cwd=tmp_path,
                           env=_clean_env(), capture_output=True, timeout=60, check=False)
    assert probe.returncode != 0

    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [str(venv / "bin" / "bridge"), "serve", "--migrate"], cwd=tmp_path,
            env=_clean_env(BRIDGE_DATA_DIR=str(tmp_path / "data"), BRIDGE_HOST=LOOPBACK,
                           BRIDGE_PORT=str(port), BRIDGE_WORKERS="1"),
            stdout=out, stderr=subprocess.STDOUT)
    try:
        try:
            wait_for_own_listener(server, LOOPBACK, port, timeout=60)
        except Exception:
            pytest.fail(f"bridge serve did not listen:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/healthz",
                                        timeout=10) as resp:
                status, body = resp.status, resp.read()
        except OSError as exc:  # e.g. the worker failed to boot: the log says why
            pytest.fail(f"/healthz: {exc}\n{log.read_text()[-4000:]}")
        assert (status, body) == (200, b'{"status":"ok"}\n')
        # The console's templates and stylesheet are package data: shipped, not only in git.
        for path, marker in (("/console", b"Sign in as IAM user"),
                             ("/console/static/console/console.css", b"--accent")):
            with urllib.request.urlopen(f"http://{LOOPBACK}:{port}{path}",
                                        timeout=10) as resp:
                assert resp.status == 200 and marker in resp.read(), path
    finally:
        server.terminate()
        server.wait(timeout=30)
