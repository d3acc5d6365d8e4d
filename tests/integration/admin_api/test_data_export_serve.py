"""A data export through a real `bridge serve`: the serving process runs the `data-export`
job in the background (its lease in the database), and the pre-signed link downloads over
plain HTTP without credentials."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bridge.api.principals import PrincipalStore
from bridge.domain import Actor
from bridge.jobs import JobLeases
from bridge.services import build_services
from bridge.store.db import upgrade
from config import load_settings
from tests.servers.bridge_serve import ServeLog, bridge_serve
from tests.servers.ports import LOOPBACK

SETUP = Actor(type="TestSetup", principal_id="setup")


def signed(method: str, url: str, credentials: Credentials) -> requests.Response:
    request = AWSRequest(method=method, url=url, data=b"")
    SigV4Auth(credentials, "chime", "us-east-1").add_auth(request)
    return requests.request(method, url, headers=dict(request.headers.items()), timeout=10)


def test_serve_builds_the_export_and_the_link_downloads(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = load_settings(env={}, overrides={"data_dir": data})
    upgrade(settings.effective_database_url)
    svc = build_services(settings)  # creates the data directory's secret key, as serve does
    account = svc.engine.create_account(SETUP, "Served")
    for i in range(5):
        svc.engine.invite_users(SETUP, account.id, [f"u{i}@served.test"])
    created = PrincipalStore(svc.engine.uow, svc.secrets).create(
        SETUP, "exporter", [{"Managed": "ReadOnly"}])
    credentials = Credentials(created.access_key_id, created.secret_access_key)
    log = ServeLog()
    with bridge_serve(data, log=log, BRIDGE_LOG_LEVEL="INFO",
                      BRIDGE_DATA_EXPORT_INTERVAL_SECONDS="1") as port:
        base = f"http://{LOOPBACK}:{port}/accounts/{account.id}/data-export"
        started = signed("POST", base, credentials)
        assert started.status_code == 202
        export_id = started.json()["DataExport"]["ExportId"]
        # The job logs the export ready once it is committed (bridge/data_export.py).
        log.wait_for_line(f"data export {export_id} of account {account.id} ready")
        answer: dict[str, Any] = signed("GET", base, credentials).json()["DataExport"]
        assert answer["Status"] == "Completed", answer
        link = answer["DownloadLinks"][0]
        assert link["Url"].startswith(f"http://{LOOPBACK}:{port}/data-exports/")
        download = requests.get(link["Url"], timeout=10)  # no credentials
        assert download.status_code == 200
        archive = zipfile.ZipFile(io.BytesIO(download.content))
        manifest = json.loads(archive.read("manifest.json"))
        counts = {f["name"]: f["records"] for f in manifest["files"]}
        assert counts["users.jsonl"] == 5
    leases = {row.name: row for row in JobLeases(svc.sessions).list()}
    assert leases["data-export"].last_finished_at is not None
    svc.db.dispose()
