"""API keys (bridge.engine.api_keys and the admin actions) and account isolation: a key of
account A never reads or writes account B; every SCIM change is audited with the key id,
never the key."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select, text

from bridge import audit
from bridge.domain import Actor, DirectoryKind
from bridge.engine.api_keys import ApiKeys, parse_key
from bridge.errors import ConfirmationRequired, Conflict, Forbidden, NotFound
from bridge.store.db import transaction
from bridge.store.models import ApiKey, AuditEvent
from tests.admin_client import admin_client, full_admin  # noqa: F401 - pytest fixture
from tests.builders import enterprise
from tests.conftest import FakeClock
from tests.functional.scim.conftest import GROUP, USER, ScimClient, assert_scim_error


def _keys(app: Flask) -> ApiKeys:
    service: ApiKeys = app.extensions["bridge"].engine.api_keys
    return service


def _user(name: str) -> dict:
    return {"schemas": [USER], "userName": name,
            "emails": [{"value": name, "primary": True, "type": "work"}]}


def test_key_shape_and_only_a_hash_is_stored(app: Flask, scim: ScimClient) -> None:
    assert re.fullmatch(r"bsk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", scim.key)
    assert parse_key(scim.key) == (scim.key_id, scim.key.split("_", 2)[2])
    for bad in (None, "", "bsk_", "bsk_xyz_abc", scim.key + "x", "Bearer " + scim.key, 42):
        assert parse_key(bad) is None  # type: ignore[arg-type]
    secret = scim.key.split("_", 2)[2]
    with scim.services.db.connect() as conn:
        rows = [tuple(map(str, r)) for r in conn.execute(text("SELECT * FROM api_keys"))]
        events = [str(r[0]) for r in conn.execute(text("SELECT body FROM audit_events"))]
    assert rows and not any(secret in cell for row in rows for cell in row)
    assert not any(secret in e for e in events)


def test_only_enterprise_accounts_may_hold_keys(app: Flask, admin: Actor) -> None:
    engine = app.extensions["bridge"].engine
    keys = _keys(app)
    team = engine.create_account(admin, "Team")
    with pytest.raises(Forbidden):
        keys.create(admin, team.id)
    ad = enterprise(engine, admin, ["ad.test"], DirectoryKind.ACTIVE_DIRECTORY, name="AD")
    with pytest.raises(Conflict):
        keys.create(admin, ad.id)
    with pytest.raises(NotFound):
        keys.create(admin, "no-such-account")
    lwa = enterprise(engine, admin, ["lwa.test"], name="LWA")
    assert lwa.directory_kind is None
    with pytest.raises(ConfirmationRequired, match="ConnectOkta"):  # an explicit step
        keys.create(admin, lwa.id)
    assert engine.get_account(lwa.id).type.value == "EnterpriseLWA"
    keys.create(admin, lwa.id, connect=True)
    assert engine.get_account(lwa.id).type.value == "EnterpriseOIDC"
    assert keys.list(team.id) == []


def test_first_key_connects_okta_in_one_transaction_with_one_event(
        app: Flask, admin: Actor) -> None:
    """CreateApiKey on an EnterpriseLWA account: the Okta directory is connected and the
    key stored together, recorded as ONE CreateApiKey event that says it connected."""
    engine = app.extensions["bridge"].engine
    lwa = enterprise(engine, admin, ["lwa1.test"], name="LWA")
    with transaction(engine.uow.session_factory) as s:
        before = s.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1))
    _keys(app).create(admin, lwa.id, connect=True)
    with transaction(engine.uow.session_factory) as s:
        rows = list(s.scalars(select(AuditEvent).where(AuditEvent.seq > before)
                              .order_by(AuditEvent.seq)))
        events = [(r.event_name, r.body["errorCode"], r.body["responseElements"])
                  for r in rows]
    assert [(n, c) for n, c, _ in events] == [("CreateApiKey", None)]
    assert events[0][2]["directoryConnected"] is True
    assert engine.get_account(lwa.id).type.value == "EnterpriseOIDC"


def test_list_revoke_and_last_used(app: Flask, scim: ScimClient, admin: Actor,
                                   clock: FakeClock) -> None:
    keys = _keys(app)
    clock.advance(seconds=1)
    second = keys.create(admin, scim.account_id)
    listed = keys.list(scim.account_id)
    assert [k.key_id for k in listed] == [scim.key_id, second.view.key_id]
    assert all(k.last_used_at is None for k in listed)
    scim.get("/Users")
    used = {k.key_id: k.last_used_at for k in keys.list(scim.account_id)}
    assert used[scim.key_id] == clock.now and used[second.view.key_id] is None
    clock.advance(seconds=10)
    scim.get("/Users")  # within a minute: not rewritten
    assert keys.list(scim.account_id)[0].last_used_at == clock.now - timedelta(seconds=10)
    clock.advance(minutes=2)
    scim.get("/Users")
    assert keys.list(scim.account_id)[0].last_used_at == clock.now
    with pytest.raises(NotFound):
        keys.delete(admin, "other-account", scim.key_id)
    keys.delete(admin, scim.account_id, scim.key_id)
    assert_scim_error(scim.get("/Users"), 401)
    assert [k.key_id for k in keys.list(scim.account_id)] == [second.view.key_id]


def test_a_key_of_account_a_never_reads_or_writes_account_b(
        scim: ScimClient, other_scim: ScimClient) -> None:
    theirs = other_scim.post("/Users", _user("x@other.test")).get_json()
    their_group = other_scim.post("/Groups", {"schemas": [GROUP], "displayName": "Ops",
                                              "members": [{"value": theirs["id"]}]}).get_json()
    mine = scim.post("/Users", _user("x@example.com")).get_json()
    uid, gid = theirs["id"], their_group["id"]

    assert scim.get("/Users").get_json()["totalResults"] == 1
    assert scim.get("/Groups").get_json()["totalResults"] == 0
    assert scim.get(f"/Users?filter=id%20eq%20%22{uid}%22").get_json()["totalResults"] == 0
    assert_scim_error(scim.get(f"/Users/{uid}"), 404)
    assert_scim_error(scim.put(f"/Users/{uid}", _user("x@other.test")), 404)
    assert_scim_error(scim.patch(f"/Users/{uid}", [{"op": "replace", "path": "active",
                                                    "value": False}]), 404)
    assert_scim_error(scim.delete(f"/Users/{uid}"), 404)
    assert_scim_error(scim.get(f"/Groups/{gid}"), 404)
    assert_scim_error(scim.patch(f"/Groups/{gid}", [{"op": "remove", "path": "members"}]),
                      404)
    assert_scim_error(scim.delete(f"/Groups/{gid}"), 404)
    # Nor can my group take their user as a member.
    mine_group = scim.post("/Groups", {"schemas": [GROUP], "displayName": "Ops"}).get_json()
    assert_scim_error(scim.patch(f"/Groups/{mine_group['id']}", [
        {"op": "add", "path": "members", "value": [{"value": uid}]}]), 404)

    # B is untouched.
    assert other_scim.get(f"/Users/{uid}").get_json()["meta"] == theirs["meta"]
    assert [m["value"] for m in other_scim.get(f"/Groups/{gid}").get_json()["members"]] == [uid]
    assert_scim_error(other_scim.get(f"/Users/{mine['id']}"), 404)


def test_every_change_is_audited_with_the_key_id(scim: ScimClient) -> None:
    uid = scim.post("/Users", _user("a@example.com")).get_json()["id"]
    scim.patch(f"/Users/{uid}", [{"op": "replace", "path": "title", "value": "x"}])
    gid = scim.post("/Groups", {"schemas": [GROUP], "displayName": "G"}).get_json()["id"]
    scim.patch(f"/Groups/{gid}", [{"op": "add", "path": "members", "value": [{"value": uid}]}])
    scim.post("/Users", _user("a@example.com"))  # refused: 409, audited too
    scim.delete(f"/Groups/{gid}")
    scim.delete(f"/Users/{uid}")
    secret = scim.key.split("_", 2)[2]
    with transaction(scim.services.sessions) as session:
        rows = list(session.scalars(select(AuditEvent).where(
            AuditEvent.principal_id == f"scim-key/{scim.key_id}").order_by(AuditEvent.seq)))
        names = [(r.event_name, r.error_code) for r in rows]
        bodies = [json.dumps(r.body) for r in rows]
    assert names == [("ScimCreateUser", None), ("ScimPatchUser", None),
                     ("ScimCreateGroup", None), ("ScimPatchGroup", None),
                     ("ScimCreateUser", "Conflict"), ("ScimDeleteGroup", None),
                     ("ScimDeleteUser", None)]
    assert all(json.loads(b)["userIdentity"]["accessKeyId"] == scim.key_id for b in bodies)
    assert not any(secret in b or scim.key in b for b in bodies)
    events, _ = audit.lookup(scim.services.sessions(),
                             audit.EventQuery(event_name="ScimCreateUser"))
    assert events[0]["requestParameters"]["userName"] == "a@example.com"


def test_admin_api_key_actions(app: Flask, full_admin, admin: Actor) -> None:  # noqa: F811
    engine = app.extensions["bridge"].engine
    account = enterprise(engine, admin, ["example.com"])
    resp = full_admin.post(f"/accounts/{account.id}/api-keys", json={"ConnectOkta": True})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    created = resp.get_json()["ApiKey"]
    assert created["Key"].startswith(f"bsk_{created['KeyId']}_")
    client = app.test_client()
    auth = {"Authorization": f"Bearer {created['Key']}"}
    assert client.get("/scim/v2/Users", headers=auth).status_code == 200

    listed = full_admin.get(f"/accounts/{account.id}/api-keys").get_json()["ApiKeys"]
    assert [k["KeyId"] for k in listed] == [created["KeyId"]]
    assert "Key" not in listed[0] and listed[0]["LastUsedTimestamp"]
    assert created["Key"] not in json.dumps(listed)

    read_only = admin_client(app, "ReadOnly")
    assert read_only.post(f"/accounts/{account.id}/api-keys").status_code == 403
    assert read_only.get(f"/accounts/{account.id}/api-keys").status_code == 403
    assert read_only.delete(
        f"/accounts/{account.id}/api-keys/{created['KeyId']}").status_code == 403

    team = engine.create_account(admin, "Team")
    assert full_admin.post(f"/accounts/{team.id}/api-keys").status_code == 403
    assert full_admin.delete(f"/accounts/{account.id}/api-keys/nope").status_code == 404

    resp = full_admin.delete(f"/accounts/{account.id}/api-keys/{created['KeyId']}")
    assert resp.status_code == 204
    assert client.get("/scim/v2/Users", headers=auth).status_code == 401
    with transaction(app.extensions["bridge"].sessions) as session:
        assert session.scalars(select(ApiKey)).all() == []
        names = [(e.event_name, e.error_code) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.event_name.like("%ApiKey%"))
            .order_by(AuditEvent.seq))]
        bodies = [json.dumps(e.body) for e in session.scalars(select(AuditEvent))]
    # One event per call, refusals included (never twice).
    assert names == [("CreateApiKey", None), ("ListApiKeys", None),
                     ("CreateApiKey", "AccessDenied"), ("ListApiKeys", "AccessDenied"),
                     ("DeleteApiKey", "AccessDenied"), ("CreateApiKey", "Forbidden"),
                     ("DeleteApiKey", "NotFound"), ("DeleteApiKey", None)]
    assert not any(created["Key"] in b for b in bodies)


def test_deleting_the_account_deletes_its_keys(app: Flask, scim: ScimClient,
                                               admin: Actor) -> None:
    engine = scim.services.engine
    scim.post("/Users", _user("a@example.com"))
    engine.delete_domain(admin, scim.account_id, "example.com")
    engine.delete_account(admin, scim.account_id)
    assert_scim_error(scim.get("/Users"), 401)
    with transaction(scim.services.sessions) as session:
        assert session.scalars(select(ApiKey)).all() == []
