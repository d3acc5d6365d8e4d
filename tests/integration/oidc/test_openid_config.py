"""Per-account OpenID configuration (Get/Update/DeleteAccountWithOpenIdConfig): the service
and the admin API actions, against a real provider's discovery document."""

from __future__ import annotations

from functools import partial

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bridge import audit
from bridge.app import Services
from bridge.domain import Actor, DirectoryKind
from bridge.engine.openid_configs import OpenIdConfigs
from bridge.errors import Conflict, Forbidden, NotFound, ValidationError
from bridge.oidc_discovery import fetch_discovery
from bridge.store.db import transaction
from bridge.store.models import AccountOpenIdConfig
from tests.admin_client import admin_client
from tests.builders import claim, enterprise
from tests.integration.oidc.conftest import (
    OKTA_CLIENT_ID,
    OKTA_CLIENT_SECRET,
    make_okta_op,
    sign_in,
)
from tests.servers.oidc_op import OpenIdProvider
from tests.servers.ports import free_port

SECRET = OKTA_CLIENT_SECRET


def all_events(services: Services) -> list[dict[str, object]]:
    with transaction(services.sessions) as s:
        events, _ = audit.lookup(s, audit.EventQuery())
    return events


def test_connecting_okta_makes_the_account_enterprise_oidc_and_seals_the_secret(
        oidc_services: Services, admin: Actor, okta_op: OpenIdProvider) -> None:
    engine = oidc_services.engine
    account = enterprise(engine, admin, ["okta.example"])
    assert account.type.value == "EnterpriseLWA"
    service = oidc_services.engine.openid_configs
    view = service.update(admin, account.id, issuer_uri=okta_op.issuer,
                          client_id=OKTA_CLIENT_ID, client_secret=SECRET, connect=True)
    assert view.as_json() == {"IssuerUri": okta_op.issuer, "ClientId": OKTA_CLIENT_ID}
    assert engine.get_account(account.id).type.value == "EnterpriseOIDC"
    with transaction(oidc_services.sessions) as s:
        row = s.get(AccountOpenIdConfig, account.id)
        assert row is not None and SECRET not in row.client_secret_sealed
    client = service.client_for(account.id)
    assert client is not None and client.client_secret == SECRET
    assert SECRET not in repr(client)
    events = all_events(oidc_services)
    assert any(e["eventName"] == "UpdateAccountWithOpenIdConfig" for e in events)
    assert SECRET not in repr(events)
    # Updating without a secret keeps the stored one.
    service.update(admin, account.id, issuer_uri=okta_op.issuer, client_id="other-client")
    again = service.client_for(account.id)
    assert again is not None and again.client_secret == SECRET
    assert again.client_id == "other-client"


def test_issuer_that_does_not_answer_is_refused(oidc_services: Services,
                                                admin: Actor) -> None:
    account = enterprise(oidc_services.engine, admin, ["okta.example"])
    with pytest.raises(ValidationError, match="did not answer"):
        OpenIdConfigs(oidc_services.engine.uow, oidc_services.engine.now, oidc_services.secrets,
                      partial(fetch_discovery, timeout=2)).update(
            admin, account.id, issuer_uri=f"http://127.0.0.1:{free_port()}/oauth2/default",
            client_id=OKTA_CLIENT_ID, client_secret=SECRET)
    assert oidc_services.engine.get_account(account.id).directory_kind is None


def test_issuer_whose_discovery_names_another_issuer_is_refused(
        oidc_services: Services, admin: Actor, okta_op: OpenIdProvider) -> None:
    account = enterprise(oidc_services.engine, admin, ["okta.example"])
    service = oidc_services.engine.openid_configs
    with pytest.raises(ValidationError, match="names the issuer"):
        service.update(admin, account.id, issuer_uri=okta_op.issuer + "/",
                       client_id=OKTA_CLIENT_ID, client_secret=SECRET)
    with pytest.raises(ValidationError, match="no OpenID discovery document"):
        service.update(admin, account.id, issuer_uri=okta_op.base_url + "/oauth2/other",
                       client_id=OKTA_CLIENT_ID, client_secret=SECRET)
    with pytest.raises(ValidationError, match="https"):
        service.update(admin, account.id, issuer_uri="http://okta.example/oauth2/default",
                       client_id=OKTA_CLIENT_ID, client_secret=SECRET)
    refusals = [e for e in all_events(oidc_services)
                if e["eventName"] == "UpdateAccountWithOpenIdConfig"]
    assert refusals and all(e["errorCode"] == "ValidationError" for e in refusals)


def test_only_enterprise_accounts_without_ad_may_connect(
        oidc_services: Services, admin: Actor, okta_op: OpenIdProvider) -> None:
    engine = oidc_services.engine
    service = oidc_services.engine.openid_configs
    team = engine.create_account(admin, "Team")
    with pytest.raises(Forbidden):
        service.update(admin, team.id, issuer_uri=okta_op.issuer, client_id=OKTA_CLIENT_ID,
                       client_secret=SECRET)
    ad = enterprise(engine, admin, ["ad.example"], directory=DirectoryKind.ACTIVE_DIRECTORY)
    with pytest.raises(Conflict):
        service.update(admin, ad.id, issuer_uri=okta_op.issuer, client_id=OKTA_CLIENT_ID,
                       client_secret=SECRET)
    lwa = enterprise(engine, admin, ["lwa2.example"], name="LWA")
    with pytest.raises(ValidationError, match="ClientSecret is required"):
        service.update(admin, lwa.id, issuer_uri=okta_op.issuer, client_id=OKTA_CLIENT_ID)
    with pytest.raises(NotFound):
        service.get(lwa.id)


def test_deleting_the_config_stops_okta_sign_in_with_a_clear_page(
        web: FlaskClient, oidc_services: Services, admin: Actor) -> None:
    engine = oidc_services.engine
    with make_okta_op() as op:
        account = engine.create_account(admin, "Okta Corp")
        claim(engine, admin, account.id, "okta.example")
        service = oidc_services.engine.openid_configs
        service.update(admin, account.id, issuer_uri=op.issuer, client_id=OKTA_CLIENT_ID,
                       client_secret=SECRET, connect=True)
        key = engine.api_keys.create(admin, account.id)  # SCIM keeps Okta connected
        assert service.delete(admin, account.id) is False
        with pytest.raises(NotFound):
            service.delete(admin, account.id)
        resp = web.get("/auth/login?email=pro@okta.example",
                       headers={"Accept": "application/json"})
        assert resp.status_code == 503
        assert resp.get_json()["error"] == "okta_not_configured"
        assert engine.get_account(account.id).type.value == "EnterpriseOIDC"
        # The last key gone too: console-managed again, sign-in by the default provider.
        assert engine.api_keys.delete(admin, account.id, key.view.key_id) is True
        assert engine.get_account(account.id).type.value == "EnterpriseLWA"
        resp = web.get("/auth/login?email=pro@okta.example",
                       headers={"Accept": "application/json"})
        assert resp.status_code == 302


# --- the admin API actions ------------------------------------------------------------------


def test_admin_api_put_get_delete(oidc_app: Flask, oidc_services: Services, admin: Actor,
                                  okta_op: OpenIdProvider) -> None:
    account = enterprise(oidc_services.engine, admin, ["okta.example"])
    api = admin_client(oidc_app, "FullAccess")
    path = f"/accounts/{account.id}/openid-config"
    assert api.get(path).status_code == 404
    unconfirmed = api.put(path, json={"IssuerUri": okta_op.issuer, "ClientId": OKTA_CLIENT_ID,
                                      "ClientSecret": SECRET})
    assert unconfirmed.status_code == 409
    assert "ConnectOkta" in unconfirmed.get_json()["Message"]
    assert api.get(path).status_code == 404
    put = api.put(path, json={"IssuerUri": okta_op.issuer, "ClientId": OKTA_CLIENT_ID,
                              "ClientSecret": SECRET, "ConnectOkta": True})
    assert put.status_code == 200, put.get_data(as_text=True)
    assert put.get_json()["OpenIdConfig"] == {"IssuerUri": okta_op.issuer,
                                              "ClientId": OKTA_CLIENT_ID}
    assert put.get_json()["Account"]["AccountType"] == "EnterpriseOIDC"
    got = api.get(path)
    assert got.status_code == 200 and SECRET not in got.get_data(as_text=True)
    bad = api.put(path, json={"IssuerUri": okta_op.issuer + "/", "ClientId": OKTA_CLIENT_ID})
    assert bad.status_code == 400
    assert "names the issuer" in bad.get_data(as_text=True)
    assert api.delete(path).status_code == 204
    assert api.get(path).status_code == 404
    names = [e["eventName"] for e in all_events(oidc_services)]
    # a refusal to connect unasked, one success, one refusal
    assert names.count("UpdateAccountWithOpenIdConfig") == 3
    assert names.count("DeleteAccountWithOpenIdConfig") == 1
    assert SECRET not in repr(all_events(oidc_services))


def test_admin_api_requires_full_access(oidc_app: Flask, oidc_services: Services,
                                        admin: Actor, okta_op: OpenIdProvider) -> None:
    account = enterprise(oidc_services.engine, admin, ["okta.example"])
    path = f"/accounts/{account.id}/openid-config"
    for policy in ("UserManagement", "ReadOnly"):
        api = admin_client(oidc_app, policy)
        assert api.get(path).status_code == 403
        assert api.put(path, json={"IssuerUri": okta_op.issuer, "ClientId": "x",
                                   "ClientSecret": "y"}).status_code == 403


def test_configured_through_the_api_then_signed_in(
        oidc_app: Flask, web: FlaskClient, oidc_services: Services, admin: Actor,
        okta_op: OpenIdProvider) -> None:
    from bridge.domain import IdentitySource, Tier

    engine = oidc_services.engine
    account = enterprise(engine, admin, ["okta.example"])
    api = admin_client(oidc_app, "FullAccess")
    assert api.put(f"/accounts/{account.id}/openid-config",
                   json={"IssuerUri": okta_op.issuer, "ClientId": OKTA_CLIENT_ID,
                         "ClientSecret": SECRET, "ConnectOkta": True}).status_code == 200
    group = engine.upsert_group(admin, account.id, name="Engineering")
    engine.add_or_update_group_mappings(admin, account.id, {group.name: Tier.PRO})
    engine.upsert_directory_user(admin, account.id, source=IdentitySource.SCIM,
                                 external_id="00u-pro", primary_email="pro@okta.example")
    resp = sign_in(web, okta_op, email="pro@okta.example")
    assert resp.status_code == 302, resp.get_data(as_text=True)
    assert web.get("/auth/session").get_json()["tier"] == "pro"


def test_connecting_okta_is_one_transaction_with_one_event(
        oidc_services: Services, admin: Actor, okta_op: OpenIdProvider) -> None:
    """Connect (EnterpriseOIDC) and the stored configuration commit together, recorded as
    ONE UpdateAccountWithOpenIdConfig event; a refusal leaves one refused event and the
    account as it was."""
    account = enterprise(oidc_services.engine, admin, ["okta.example"])
    before = len(all_events(oidc_services))
    service = oidc_services.engine.openid_configs
    with pytest.raises(ValidationError):
        service.update(admin, account.id, issuer_uri=okta_op.issuer, client_id="")
    refused = all_events(oidc_services)[before:]
    assert [(e["eventName"], e["errorCode"]) for e in refused] == [
        ("UpdateAccountWithOpenIdConfig", "ValidationError")]
    assert oidc_services.engine.get_account(account.id).directory_kind is None
    before = len(all_events(oidc_services))
    service.update(admin, account.id, issuer_uri=okta_op.issuer,
                   client_id=OKTA_CLIENT_ID, client_secret=SECRET, connect=True)
    new = all_events(oidc_services)[before:]
    assert [(e["eventName"], e["errorCode"]) for e in new] == [
        ("UpdateAccountWithOpenIdConfig", None)]
    assert oidc_services.engine.get_account(account.id).type.value == "EnterpriseOIDC"


def test_a_client_secret_of_the_longest_utf8_is_stored_on_both_stores(
        services: Services, admin: Actor, okta_op: OpenIdProvider) -> None:
    """ClientSecret is limited to 1,024 characters, not bytes: 1,024 four-byte characters
    seal to 5,560 characters, which overflowed the 2,048 the column held on PostgreSQL
    (a 500 after the discovery round trip)."""
    account = enterprise(services.engine, admin, ["okta.example"])
    configs = OpenIdConfigs(services.engine.uow, services.engine.now, services.secrets,
                            partial(fetch_discovery, timeout=5))
    secret = "\U0001f511" * 1024
    configs.update(admin, account.id, issuer_uri=okta_op.issuer, client_id=OKTA_CLIENT_ID,
                   client_secret=secret, connect=True)
    client = configs.client_for(account.id)
    assert client is not None and client.client_secret == secret
    with pytest.raises(ValidationError, match="1 to 1024"):
        configs.update(admin, account.id, issuer_uri=okta_op.issuer,
                       client_id=OKTA_CLIENT_ID, client_secret=secret + "x")
