"""The console's **Active directory** page through Flask's test client: the connect form's
refusal in words when the bind check fails (a real LDAP client against a closed loopback
port; the success path against a real Samba DC is in
tests/integration/ad/test_console_directory.py), and **Directory groups** (**Add a new
group**, **Group**, **Permission tier**, delete): each control is the admin API action of
the same name, audited once with the console as source; the bind password appears in no
page and no event; a ReadOnly admin sees no write control and is refused by the server
anyway; every form needs its CSRF token."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from bridge.app import Services, build_services, create_app
from bridge.domain import Actor, DirectoryKind, Tier
from tests.builders import enterprise
from tests.conftest import FakeClock, make_settings
from tests.functional.console.conftest import Console, events

SETUP = Actor(type="Test", principal_id="test", name="test")
SECRET = "bind-password-never-shown-77"


@pytest.fixture
def svc(sqlite_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[Services]:
    built = build_services(make_settings(tmp_path, sqlite_url), clock=clock)
    yield built
    built.db.dispose()


@pytest.fixture
def console(svc: Services, clock: FakeClock) -> Console:
    client: FlaskClient = create_app(svc.settings, svc).test_client()
    return Console(svc, client, clock)


def _mine(svc: Services, name: str | None) -> list[dict[str, object]]:
    return [e for e in events(svc, name)
            if e["userIdentity"]["principalId"] != "test"]  # type: ignore[index]


def test_a_failed_bind_is_said_in_words_and_nothing_is_connected(
        console: Console, svc: Services) -> None:
    account = enterprise(svc.engine, SETUP, ["example.com"])
    console.sign_in("alice")
    base = f"/console/accounts/{account.id}/settings/directory"
    page = console.client.get(base)
    assert "Connect to your Active Directory" in page.text and "Directory groups" in page.text
    form = console.client.get(base + "?connect=1")
    for label in ("LDAP URL", "BaseDn", "Bind DN", "Bind password", "CA certificate (PEM)",
                  "GroupBaseDn", "User filter"):
        assert f">{label}" in form.text, label
    refused = console.form(base, {"ldap_url": "ldaps://127.0.0.1:9", "base_dn": "DC=corp",
                                  "bind_dn": "CN=svc,DC=corp", "bind_password": SECRET},
                           page=base + "?connect=1")
    assert refused.status_code == 400  # type: ignore[attr-defined]
    assert 'id="connect-error"' in refused.text  # type: ignore[attr-defined]
    assert "Cannot connect to the directory" in refused.text  # type: ignore[attr-defined]
    assert SECRET not in refused.text  # type: ignore[attr-defined]
    assert svc.engine.ad_directories.get(account.id) is None
    assert svc.engine.get_account(account.id).directory_kind is None
    [event] = _mine(svc, "ConnectDirectory")
    assert event["errorCode"] == "ValidationError"
    assert event["userIdentity"]["source"] == "console"  # type: ignore[index]
    assert SECRET not in json.dumps(events(svc), default=str)


def test_add_and_delete_directory_groups(console: Console, svc: Services) -> None:
    account = enterprise(svc.engine, SETUP, ["example.com"],
                         directory=DirectoryKind.ACTIVE_DIRECTORY)
    console.sign_in("alice")
    base = f"/console/accounts/{account.id}/settings/directory"
    assert "No directory groups yet" in console.client.get(base).text
    form = console.client.get(base + "?add_group=1")
    assert "Add a new group" in form.text and ">Group</label>" in form.text
    assert "Permission tier" in form.text
    added = console.form(base + "/groups", {"group": "Chime-Pro", "tier": "Pro"},
                         page=base + "?add_group=1")
    assert added.status_code == 302  # type: ignore[attr-defined]
    console.form(base + "/groups", {"group": "Chime-Basic", "tier": "Basic"}, page=base)
    mapped = {g.name: g.tier for g in svc.engine.list_group_mappings(account.id)}
    assert mapped == {"Chime-Pro": Tier.PRO, "Chime-Basic": Tier.BASIC}
    page = console.client.get(base).text
    assert "Chime-Pro" in page and "Basic" in page

    bad = console.form(base + "/groups", {"group": "X", "tier": "Gold"}, page=base)
    assert bad.status_code == 400 and "Pro or Basic" in bad.text  # type: ignore[attr-defined]
    deleted = console.form(base + "/groups/delete", {"group": "Chime-Pro"}, page=base)
    assert deleted.status_code == 302  # type: ignore[attr-defined]
    assert [g.name for g in svc.engine.list_group_mappings(account.id)] == ["Chime-Basic"]
    adds = _mine(svc, "AddOrUpdateGroups")
    assert [e["errorCode"] for e in adds] == [None, None, "ValidationError"]
    [delete] = _mine(svc, "DeleteGroups")
    assert delete["errorCode"] is None
    assert delete["userIdentity"]["source"] == "console"  # type: ignore[index]


def test_an_okta_group_not_pushed_yet_is_said_on_the_form(console: Console,
                                                          svc: Services) -> None:
    account = enterprise(svc.engine, SETUP, ["example.com"], directory=DirectoryKind.OKTA)
    console.sign_in("alice")
    base = f"/console/accounts/{account.id}/settings/directory"
    refused = console.form(base + "/groups", {"group": "Nobody", "tier": "Pro"}, page=base)
    assert refused.status_code == 404  # type: ignore[attr-defined]
    assert "wait a few minutes" in refused.text  # type: ignore[attr-defined]
    assert 'id="group-error"' in refused.text  # type: ignore[attr-defined]
    [event] = _mine(svc, "AddOrUpdateGroups")
    assert event["errorCode"] == "NotFound"


def test_read_only_admin_sees_groups_without_write_controls_and_is_refused(
        console: Console, svc: Services) -> None:
    account = enterprise(svc.engine, SETUP, ["example.com"],
                         directory=DirectoryKind.ACTIVE_DIRECTORY,
                         groups={"Chime-Pro": Tier.PRO})
    console.sign_in("reader", "ReadOnly")
    base = f"/console/accounts/{account.id}/settings/directory"
    page = console.client.get(base)
    assert page.status_code == 200 and "Chime-Pro" in page.text
    for control in ("Connect to your Active Directory", "Add a new group", ">Delete<",
                    ">Disconnect<", f'action="{base}'):
        assert control not in page.text, control
    for path, data in ((base, {"ldap_url": "ldaps://127.0.0.1:9", "base_dn": "DC=x",
                               "bind_dn": "CN=x", "bind_password": SECRET}),
                       (base + "/disconnect", {}),
                       (base + "/groups", {"group": "Evil", "tier": "Pro"}),
                       (base + "/groups/delete", {"group": "Chime-Pro"})):
        token_page = f"/console/accounts/{account.id}/users"
        assert console.form(path, data, page=token_page).status_code == 403, path
    assert [g.name for g in svc.engine.list_group_mappings(account.id)] == ["Chime-Pro"]
    refused = {e["eventName"] for e in _mine(svc, None) if e["errorCode"] == "AccessDenied"}
    assert {"ConnectDirectory", "DisconnectDirectory", "AddOrUpdateGroups",
            "DeleteGroups"} <= refused


def test_every_directory_form_needs_its_csrf_token(console: Console, svc: Services) -> None:
    account = enterprise(svc.engine, SETUP, ["example.com"],
                         directory=DirectoryKind.ACTIVE_DIRECTORY,
                         groups={"Chime-Pro": Tier.PRO})
    console.sign_in("alice")
    base = f"/console/accounts/{account.id}/settings/directory"
    for path, data in ((base, {"base_dn": "DC=x"}), (base + "/disconnect", {}),
                       (base + "/groups", {"group": "Evil", "tier": "Pro"}),
                       (base + "/groups/delete", {"group": "Chime-Pro"})):
        refused = console.client.post(path, data=data)
        assert refused.status_code == 403 and "expired" in refused.text, path
    assert [g.name for g in svc.engine.list_group_mappings(account.id)] == ["Chime-Pro"]
    assert _mine(svc, "AddOrUpdateGroups") == [] and _mine(svc, "DeleteGroups") == []
