"""The composition root over HTTP and the bridge command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from flask.testing import FlaskClient

from bridge.app import Services
from bridge.cli import build_parser, main


def test_healthz_checks_the_database(client: FlaskClient, app_services: Services,
                                    tmp_path: Path) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    app_services.db.dispose()
    # Point the engine at a database that cannot be opened: the check must fail clearly.
    from bridge.store.db import make_engine

    app_services.db = make_engine(f"sqlite:///{tmp_path}")  # a directory is no database
    failed = client.get("/healthz")
    assert failed.status_code == 503
    assert failed.get_json()["status"] == "error"
    assert "Traceback" not in failed.get_data(as_text=True)


def test_help_lists_every_verb() -> None:
    text = build_parser().format_help()
    for verb in ("serve", "db", "audit"):
        assert verb in text


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bridge.cli", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60, check=False)


def test_db_upgrade_then_audit_export(tmp_path: Path) -> None:
    env = {"BRIDGE_DATA_DIR": str(tmp_path / "data"), "BRIDGE_DATABASE_URL": ""}
    up = _run(["db", "upgrade"], env)
    assert up.returncode == 0, up.stderr
    assert (tmp_path / "data" / "bridge.db").exists()
    assert _run(["db", "check"], env).returncode == 0

    from bridge.app import build_services
    from bridge.domain import Actor
    from config import load_settings

    services = build_services(load_settings(env=env))
    services.engine.create_account(Actor.system("test"), "Exported")
    services.db.dispose()
    out = tmp_path / "events.jsonl"
    export = _run(["audit", "export", "--since", "2000-01-01T00:00Z", "-o", str(out)], env)
    assert export.returncode == 0, export.stderr
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["eventName"] for e in events] == ["CreateAccount"]
    assert events[0]["eventSource"] == "chime.bridge.local"


def test_bad_setting_stops_with_one_clear_line(capsys: object) -> None:
    os.environ["BRIDGE_PORT"] = "not-a-port"
    try:
        code = main(["db", "check"])
    finally:
        del os.environ["BRIDGE_PORT"]
    assert code == 2
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert err.strip() == ("bridge: configuration error: BRIDGE_PORT: must be an integer, "
                           "got 'not-a-port'")


def test_unknown_paths_answer_in_each_doors_protocol(client: FlaskClient) -> None:
    admin = client.get("/no-such-operation")
    assert admin.status_code == 404
    assert admin.headers["x-amzn-ErrorType"] == "NotFoundException"
    assert admin.get_json()["Code"] == "NotFoundException"
    wrong_method = client.patch("/healthz")
    assert wrong_method.status_code == 400
    assert wrong_method.headers["x-amzn-ErrorType"] == "BadRequestException"
    # The SCIM door authenticates before anything else: 401 in SCIM's own error format.
    scim = client.get("/scim/v2/NoSuchResource")
    assert scim.status_code == 401
    assert scim.headers["Content-Type"].startswith("application/scim+json")
    assert scim.get_json()["status"] == "401"
    outside = client.get("/scim/v1/Users")
    assert outside.status_code == 404 and outside.get_json()["status"] == "404"
    auth = client.get("/auth/no-such-page")
    assert auth.status_code == 404 and auth.get_json()["error"] == "not_found"
