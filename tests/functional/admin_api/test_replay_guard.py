"""The replay guard: a signature is remembered once it verified against its key, and only
a request that itself verified with that key (and executed nothing) may release it.

Regression for issue 10, item 1: a forged request carrying a captured ``Signature=``
under another access key (401) used to release the captured signature, so the captured
request could then be replayed (201 again, attributed to the real administrator).
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Flask

from bridge import audit
from bridge.app import Services
from bridge.domain import DirectoryKind
from bridge.store.db import transaction
from tests.admin_client import SETUP_ACTOR, AdminClient, admin_client
from tests.builders import enterprise

FORGED_KEY = "AKIAAAAAAAAAAAAAAAAA"


def _events(svc: Services, name: str) -> list[dict[str, Any]]:
    with transaction(svc.sessions) as session:
        found, _ = audit.lookup(session, audit.EventQuery(event_name=name, limit=1000))
    return found


def _successes(svc: Services, name: str) -> int:
    return sum(1 for e in _events(svc, name) if e["errorCode"] is None)


def _capture(admin: AdminClient, path: str, body: bytes) -> dict[str, str]:
    return admin.signed_headers("POST", path, "", body, {"Content-Type": "application/json"})


def _with_key(headers: dict[str, str], access_key_id: str) -> dict[str, str]:
    """The captured headers with another access key in the credential scope (the
    captured ``Signature=`` value unchanged)."""
    forged = dict(headers)
    forged["Authorization"] = re.sub(r"Credential=[A-Z0-9]+/", f"Credential={access_key_id}/",
                                     headers["Authorization"])
    assert forged["Authorization"] != headers["Authorization"]
    return forged


def _attack(app: Flask, path: str, body: bytes, headers: dict[str, str]) -> list[int]:
    """The sequence of the issue: forged Authorization (same Signature=, access key
    AKIAAAAAAAAAAAAAAAAA), then the captured request replayed. Returns both statuses."""
    client = app.test_client()
    forged = client.post(path, data=body, headers=_with_key(headers, FORGED_KEY))
    replay = client.post(path, data=body, headers=headers)
    return [forged.status_code, replay.status_code]


def test_a_forged_key_cannot_release_a_captured_create_api_key(
        store_app: Flask, services: Services) -> None:
    admin = admin_client(store_app, "FullAccess")
    account = enterprise(services.engine, SETUP_ACTOR, ["replay.example"],
                         directory=DirectoryKind.OKTA)  # connected: a key is a plain create
    path = f"/accounts/{account.id}/api-keys"
    headers = _capture(admin, path, b"")
    assert store_app.test_client().post(path, data=b"", headers=headers).status_code == 201
    before = len(_events(services, "CreateApiKey"))

    assert _attack(store_app, path, b"", headers) == [401, 429]

    keys = admin.get(path).get_json()["ApiKeys"]
    assert len(keys) == 1  # nothing created by the replay
    assert _successes(services, "CreateApiKey") == 1
    # Two refusals audited (the forged call, the replay), no new success.
    assert len(_events(services, "CreateApiKey")) == before + 2


def test_a_forged_key_cannot_release_a_captured_create_account(
        store_app: Flask, services: Services) -> None:
    admin = admin_client(store_app, "FullAccess")
    body = json.dumps({"Name": "Once only"}).encode()
    headers = _capture(admin, "/accounts", body)
    assert store_app.test_client().post("/accounts", data=body,
                                        headers=headers).status_code == 201
    for _ in range(3):  # the issue created the account three times this way
        assert _attack(store_app, "/accounts", body, headers) == [401, 429]
    names = [a["Name"] for a in admin.get("/accounts").get_json()["Accounts"]]
    assert names.count("Once only") == 1
    assert _successes(services, "CreateAccount") == 1


def test_only_a_request_verified_with_the_key_releases_its_signature(
        store_app: Flask, services: Services) -> None:
    """The right access key but a request that does not verify (changed body), or
    another principal's real key: both 401, neither releases the captured signature."""
    admin = admin_client(store_app, "FullAccess")
    other = admin_client(store_app, "FullAccess")
    body = json.dumps({"Name": "Guarded"}).encode()
    headers = _capture(admin, "/accounts", body)
    client = store_app.test_client()
    assert client.post("/accounts", data=body, headers=headers).status_code == 201
    changed = json.dumps({"Name": "Guardee"}).encode()
    assert client.post("/accounts", data=changed, headers=headers).status_code == 401
    assert client.post("/accounts", data=body,
                       headers=_with_key(headers, other.access_key_id)).status_code == 401
    assert client.post("/accounts", data=body, headers=headers).status_code == 429
    assert _successes(services, "CreateAccount") == 1


def test_a_verified_request_that_ran_nothing_may_be_resent(
        store_app: Flask, services: Services) -> None:
    """A refusal after verification (403 here) executed nothing: the same signed request
    may be resent (and is refused again for its own reason, not as a replay)."""
    reader = admin_client(store_app, "ReadOnly")
    body = json.dumps({"Name": "Not allowed"}).encode()
    headers = _capture(reader, "/accounts", body)
    client = store_app.test_client()
    statuses = [client.post("/accounts", data=body, headers=headers).status_code
                for _ in range(2)]
    assert statuses == [403, 403]
