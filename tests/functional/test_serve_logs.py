"""`bridge serve` end to end: secrets in URLs never reach the access log."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from bridge.logs import scrub_access_atoms
from tests.servers.ports import free_port, wait_for_own_listener


def test_access_atoms_are_scrubbed() -> None:
    atoms = {"m": "GET", "U": "/invitations/tok-123", "q": "code=abc&state=xyz",
             "H": "HTTP/1.1", "f": "https://idp/cb?code=abc", "r": "GET /x?code=abc HTTP/1.1"}
    safe = scrub_access_atoms(atoms)
    assert safe["U"] == "/invitations/***"
    assert safe["r"] == "GET /invitations/*** HTTP/1.1"
    assert "abc" not in repr(safe) and "tok-123" not in repr(safe)


def test_served_access_log_has_no_tokens_or_codes(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "BRIDGE_DATA_DIR": str(tmp_path / "data"), "BRIDGE_PORT": str(port),
           "BRIDGE_WORKERS": "1", "BRIDGE_DATABASE_URL": ""}
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bridge.cli", "serve", "--migrate"],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_own_listener(proc, "127.0.0.1", port, timeout=30)
        for path in ("/invitations/SECRET-INVITE-TOKEN",
                     "/auth/okta/callback?code=SECRET-CODE&state=SECRET-STATE",
                     "/healthz"):
            # Refusals are fine: only the log matters here.
            with contextlib.suppress(urllib.error.HTTPError):
                urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10)
    finally:
        # Stop the server first: once it has exited, every access line is in the file.
        proc.terminate()
        proc.wait(timeout=30)
    text = log.read_text()
    assert "/invitations/***" in text
    assert "SECRET" not in text
