"""The directory registry's rules without a directory (the bind checks are passed in, as
the composition root passes the AD door's): organisations are isolated, inline settings and
a directory id do not mix, a connection switching directories starts with a full sync,
and an id in use cannot be unauthorized, on both stores."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update

from bridge.domain import Actor
from bridge.engine import ResolutionEngine
from bridge.errors import Conflict, NotFound, ValidationError
from bridge.store.ad_models import AdDirectory
from bridge.store.db import transaction
from tests.builders import enterprise

ORG, OTHER_ORG = "111111111111", "222222222222"
TARGET = {"LdapUrl": "ldaps://dc.corp.test", "BindDn": "CN=svc,DC=corp,DC=test",
          "BindPassword": "svc-password-1"}


def _no_bind(_target: Any) -> str:
    return "DC=corp,DC=test"


def _register(engine: ResolutionEngine, admin: Actor, org: str = ORG, **body: Any) -> str:
    return engine.directory_registry.authorize(admin, org, {**TARGET, **body}, _no_bind).id


def test_another_organisations_directory_is_unknown(engine: ResolutionEngine,
                                                    admin: Actor) -> None:
    directory_id = _register(engine, admin)
    account = enterprise(engine, admin, ["corp.test"])
    body = {"DirectoryId": directory_id, "BaseDn": "OU=Staff,DC=corp,DC=test"}
    with pytest.raises(NotFound):
        engine.ad_directories.connect(admin, account.id, body, lambda _c: None,
                                      organisation=OTHER_ORG)
    with pytest.raises(NotFound):
        engine.directory_registry.unauthorize(admin, OTHER_ORG, directory_id)
    assert engine.directory_registry.list_directories(OTHER_ORG) == []
    # The same directory may be registered by another organisation (its own id).
    assert _register(engine, admin, OTHER_ORG) != directory_id


def test_inline_settings_and_an_id_do_not_mix(engine: ResolutionEngine, admin: Actor) -> None:
    directory_id = _register(engine, admin)
    account = enterprise(engine, admin, ["corp.test"])
    with pytest.raises(ValidationError, match="not both"):
        engine.ad_directories.connect(admin, account.id, {
            "DirectoryId": directory_id, "BaseDn": "OU=Staff,DC=corp,DC=test",
            "LdapUrl": "ldaps://elsewhere.test"}, lambda _c: None, organisation=ORG)
    with pytest.raises(ValidationError):
        engine.ad_directories.connect(admin, account.id, {"DirectoryId": directory_id},
                                      lambda _c: None, organisation=ORG)  # no BaseDn


def test_switching_to_a_registered_directory_starts_over(engine: ResolutionEngine,
                                                         admin: Actor) -> None:
    account = enterprise(engine, admin, ["corp.test"])
    seen: list[Any] = []
    engine.ad_directories.connect(admin, account.id, {**TARGET, "BaseDn": "DC=corp,DC=test"},
                                  seen.append)
    with transaction(engine.uow.session_factory, write=True) as session:
        session.execute(update(AdDirectory).values(highest_usn=42, invocation_id="inv",
                                                   dc_name="dc"))
    directory_id = _register(engine, admin)
    view = engine.ad_directories.connect(admin, account.id, {
        "DirectoryId": directory_id, "BaseDn": "DC=corp,DC=test"}, seen.append,
        organisation=ORG)
    assert view.directory_id == directory_id and view.highest_usn is None
    # The bind check saw the registry's settings; the row keeps none of its own.
    assert seen[-1].bind_password == "svc-password-1" and seen[-1].directory_id == directory_id
    connection = engine.ad_directories.connection(account.id)
    assert connection.bind_dn == TARGET["BindDn"] and connection.directory_id == directory_id
    with transaction(engine.uow.session_factory) as session:
        row = session.get(AdDirectory, account.id)
        assert row is not None and row.bind_password_sealed is None and row.ldap_url is None


def test_a_directory_in_use_stays(engine: ResolutionEngine, admin: Actor) -> None:
    directory_id = _register(engine, admin)
    account = enterprise(engine, admin, ["corp.test"], name="Corp")
    engine.ad_directories.connect(admin, account.id, {
        "DirectoryId": directory_id, "BaseDn": "DC=corp,DC=test"}, lambda _c: None,
        organisation=ORG)
    with pytest.raises(Conflict, match=f"Corp \\({account.id}\\)") as refused:
        engine.directory_registry.unauthorize(admin, ORG, directory_id)
    assert refused.value.audited
    (listed,) = engine.directory_registry.list_directories(ORG)
    assert listed.connected_account_ids == (account.id,)
    # Replacing the settings keeps the id and the connected accounts.
    replaced = engine.directory_registry.authorize(
        admin, ORG, {**TARGET, "BindPassword": "rotated-2"}, _no_bind,
        directory_id=directory_id)
    assert replaced.id == directory_id and replaced.connected_account_ids == (account.id,)
    assert engine.ad_directories.connection(account.id).bind_password == "rotated-2"
    engine.ad_directories.disconnect(admin, account.id)
    engine.directory_registry.unauthorize(admin, ORG, directory_id)
    assert engine.directory_registry.list_directories(ORG) == []
