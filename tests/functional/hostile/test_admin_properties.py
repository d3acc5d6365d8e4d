"""Property-based: every admin API operation that takes a body, fed generated JSON members
(the model's member names with values of any JSON type, plausible values, unknown members,
broken bodies), as a FullAccess and a ReadOnly admin: never a 5xx, always the AWS
rest-json error shape on a refusal, and a refusal changes nothing (issue 10, item 3)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import botocore.session
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st

from bridge.api.framework import ActionSpec, registered_actions
from tests.admin_client import admin_client
from tests.functional.hostile.conftest import loopback_only, snapshot
from tests.functional.hostile.strategies import fuzz_settings, json_values, raw_bodies

_MODEL = botocore.session.get_session().get_service_model("chime")


def body_members(spec: ActionSpec) -> list[str]:
    """The JSON body members of an operation: botocore's chime model (the wire contract),
    else the extension path's request schema."""
    if spec.operation in _MODEL.operation_names:
        shape = _MODEL.operation_model(spec.operation).input_shape
        return [name for name, member in (shape.members.items() if shape else [])
                if not member.serialization.get("location")]
    return list((spec.request_schema or {}).get("properties", {}))


def _plausible(ids: dict[str, str]) -> dict[str, Any]:
    """A value the handler would accept for each member name, so that generated requests
    also get past validation and reach the engine."""
    return {
        "Name": "Team B", "DefaultLicense": "Pro", "LicenseType": "Basic",
        "UserType": "PrivateUser", "UserEmailList": ["new@example.com"],
        "UserIdList": [ids["userId"]], "GroupNames": ["staff"], "DomainName": "example.org",
        "SigninDelegateGroups": [{"GroupName": "staff"}],
        "UpdateUserRequestItems": [{"UserId": ids["userId"], "LicenseType": "Pro"}],
        "AccountSettings": {"DisableRemoteControl": True, "EnableDialOut": False},
        "Groups": [{"GroupName": "staff", "LicenseType": "Pro"}], "Subject": "Help",
        "Description": "It broke", "AccountId": ids["accountId"],
        "ContactEmail": "a@example.com", "IssuerUri": "https://127.0.0.1:9/issuer",
        "ClientId": "client", "ClientSecret": "secret", "LdapUrl": "ldaps://127.0.0.1:9",
        "StartTls": False, "BaseDn": "dc=example,dc=com", "BindDn": "cn=svc,dc=example",
        "BindPassword": "pw", "UserFilter": "(objectClass=user)"}


def _path(spec: ActionSpec, ids: dict[str, str], junk: str | None) -> str:
    def fill(name: str) -> str:
        return quote(junk if junk is not None else ids.get(name, "x"), safe="")

    import re

    return re.sub(r"<(?:[a-z]+:)?([A-Za-z_]+)>", lambda m: fill(m.group(1)), spec.rule)


def test_admin_json_members(fuzz_app: Flask) -> None:
    full = admin_client(fuzz_app, "FullAccess", name="fuzz-full")
    read_only = admin_client(fuzz_app, "ReadOnly", name="fuzz-ro")
    created = full.post("/accounts", json={"Name": "Fuzz Corp"})
    assert created.status_code == 201
    account_id = created.get_json()["Account"]["AccountId"]
    invited = full.post(f"/accounts/{account_id}/users",
                        query={"operation": "add"}, json={"UserEmailList": ["u@example.com"]})
    assert invited.status_code == 201, invited.get_data(as_text=True)
    user_id = invited.get_json()["Invites"][0]["InviteId"]
    ids = {"accountId": account_id, "userId": user_id, "domainName": "example.org",
           "groupName": "staff", "keyId": "k"}
    plausible = _plausible(ids)
    # The bridge's own actions (other tests register test-only ones in the same process).
    operations = [s for s in registered_actions() if s.method != "GET"
                  and s.handler.__module__.startswith("bridge.api.")]
    assert {"CreateAccount", "InviteUsers", "AddDomain"} <= {s.operation for s in operations}
    db = fuzz_app.extensions["bridge"].db

    def members(spec: ActionSpec) -> st.SearchStrategy[Any]:
        names = body_members(spec)
        typed = {n: st.one_of(st.just(plausible.get(n, "x")), json_values()) for n in names}
        known = st.fixed_dictionaries({}, optional=typed)
        extra = st.dictionaries(st.text(max_size=10), json_values(), max_size=2)
        return st.one_of(known, known, st.builds(lambda a, b: {**b, **a}, known, extra))

    @fuzz_settings(300)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        spec = data.draw(st.sampled_from(operations), label="operation")
        junk = data.draw(st.one_of(st.none(), st.none(), st.text(max_size=12)), label="path")
        raw = data.draw(st.one_of(members(spec).map(lambda m: json.dumps(loopback_only(m))),
                                  raw_bodies()), label="body")
        client = data.draw(st.sampled_from([full, full, read_only]), label="who")
        query = {"operation": spec.operation_query} if spec.operation_query else {}
        before = snapshot(db)
        resp = client.request(spec.method, _path(spec, ids, junk), data=raw if isinstance(
            raw, bytes) else raw.encode(), query=query,
            headers={"Content-Type": "application/json"})
        assert resp.status_code < 500, (spec.operation, resp.get_data(as_text=True))
        if resp.status_code >= 400:
            error = resp.get_json()
            assert set(error) == {"Code", "Message"}, error
            assert resp.headers["x-amzn-ErrorType"] == error["Code"]
            assert snapshot(db) == before, (spec.operation, resp.status_code, error)

    run()
