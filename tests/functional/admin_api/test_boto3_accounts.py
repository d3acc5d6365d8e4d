"""Account operations driven through boto3 itself against a live server."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from bridge.app import Services
from bridge.domain import Actor, DirectoryKind, Tier
from tests.admin_client import AdminClient, LiveServer
from tests.builders import claim, default_identity, enterprise

SETUP = Actor(type="TestSetup", principal_id="setup")


def refusal(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str, str]:
    error = exc.value.response["Error"]
    return (exc.value.response["ResponseMetadata"]["HTTPStatusCode"], error["Code"],
            error["Message"])


def test_create_get_rename_delete_account(chime: Any) -> None:
    created = chime.create_account(Name="  Example Team ")
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    account = created["Account"]
    assert account["Name"] == "Example Team"
    assert account["AccountType"] == "Team"
    assert account["DefaultLicense"] == "Pro"
    assert account["AwsAccountId"] == "000000000000"
    account_id = account["AccountId"]
    assert chime.get_account(AccountId=account_id)["Account"]["Name"] == "Example Team"
    renamed = chime.update_account(AccountId=account_id, Name="Renamed")["Account"]
    assert renamed["Name"] == "Renamed"
    assert chime.delete_account(AccountId=account_id)["ResponseMetadata"][
        "HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as exc:
        chime.get_account(AccountId=account_id)
    assert refusal(exc)[:2] == (404, "NotFoundException")


@pytest.mark.parametrize("name, complaint", [
    ("", "must not be empty"), ("   ", "must not be empty"),
    ("x" * 101, "101 characters; the maximum is 100")])
def test_bad_account_names(chime_unvalidated: Any, name: str, complaint: str) -> None:
    with pytest.raises(ClientError) as exc:
        chime_unvalidated.create_account(Name=name)
    status, code, message = refusal(exc)
    assert (status, code) == (400, "BadRequestException") and complaint in message
    account = chime_unvalidated.create_account(Name="ok")["Account"]
    with pytest.raises(ClientError) as exc:
        chime_unvalidated.update_account(AccountId=account["AccountId"], Name=name)
    assert refusal(exc)[1] == "BadRequestException"
    assert chime_unvalidated.get_account(AccountId=account["AccountId"])["Account"][
        "Name"] == "ok"


def test_update_account_default_license_is_not_changeable(chime: Any) -> None:
    account_id = chime.create_account(Name="T")["Account"]["AccountId"]
    with pytest.raises(ClientError) as exc:
        chime.update_account(AccountId=account_id, DefaultLicense="Basic")
    assert refusal(exc)[1] == "BadRequestException"
    same = chime.update_account(AccountId=account_id, Name="U", DefaultLicense="Pro")
    assert same["Account"]["Name"] == "U"


def test_unknown_account_ids(chime: Any) -> None:
    for call in (lambda: chime.get_account(AccountId="nope"),
                 lambda: chime.update_account(AccountId="nope", Name="x"),
                 lambda: chime.delete_account(AccountId="nope"),
                 lambda: chime.get_account_settings(AccountId="nope"),
                 lambda: chime.list_users(AccountId="nope")):
        with pytest.raises(ClientError) as exc:
            call()
        status, code, message = refusal(exc)
        assert (status, code) == (404, "NotFoundException") and "nope" in message


def test_list_accounts_by_name_prefix_user_email_and_pages(chime: Any,
                                                           app_services: Services) -> None:
    ids = [chime.create_account(Name=f"Acme {i}")["Account"]["AccountId"] for i in range(5)]
    chime.create_account(Name="Other")
    assert len(chime.list_accounts()["Accounts"]) == 6
    assert {a["AccountId"] for a in chime.list_accounts(Name="acme")["Accounts"]} == set(ids)
    pages, token = [], None
    while True:
        kwargs = {"Name": "Acme", "MaxResults": 2, **({"NextToken": token} if token else {})}
        page = chime.list_accounts(**kwargs)
        pages.append([a["AccountId"] for a in page["Accounts"]])
        token = page.get("NextToken")
        if not token:
            break
    assert [len(p) for p in pages] == [2, 2, 1]
    assert sorted(i for p in pages for i in p) == sorted(ids)
    paginated = chime.get_paginator("list_accounts").paginate(
        PaginationConfig={"PageSize": 4})
    assert sum(len(p["Accounts"]) for p in paginated) == 6
    engine = app_services.engine
    claim(engine, SETUP, ids[2], "acme2.example")
    engine.decide_sign_in(default_identity("pat@acme2.example"), SETUP)
    found = chime.list_accounts(UserEmail="Pat@Acme2.example")["Accounts"]
    assert [a["AccountId"] for a in found] == [ids[2]]
    assert found[0]["AccountType"] == "EnterpriseLWA"
    with pytest.raises(ClientError) as exc:
        chime.list_accounts(UserEmail="not-an-email")
    assert refusal(exc)[:2] == (400, "BadRequestException")
    with pytest.raises(ClientError) as exc:
        chime.list_accounts(NextToken="!!garbage!!")
    assert refusal(exc)[1] == "BadRequestException"


def test_enterprise_account_must_remove_domains_before_delete(chime: Any,
                                                              app_services: Services) -> None:
    view = enterprise(app_services.engine, SETUP, ["corp.example"])
    with pytest.raises(ClientError) as exc:
        chime.delete_account(AccountId=view.id)
    status, code, message = refusal(exc)
    assert (status, code) == (409, "ConflictException") and "corp.example" in message


def test_account_settings(chime: Any) -> None:
    account_id = chime.create_account(Name="S")["Account"]["AccountId"]
    assert chime.get_account_settings(AccountId=account_id)["AccountSettings"] == {
        "DisableRemoteControl": False, "EnableDialOut": True}
    chime.update_account_settings(AccountId=account_id,
                                  AccountSettings={"DisableRemoteControl": True})
    chime.update_account_settings(AccountId=account_id,
                                  AccountSettings={"EnableDialOut": False})
    assert chime.get_account_settings(AccountId=account_id)["AccountSettings"] == {
        "DisableRemoteControl": True, "EnableDialOut": False}


def test_account_settings_bad_input(chime_unvalidated: Any) -> None:
    account_id = chime_unvalidated.create_account(Name="S")["Account"]["AccountId"]
    with pytest.raises(ClientError) as exc:
        chime_unvalidated.update_account_settings(
            AccountId=account_id, AccountSettings={"DisableRemoteControl": "yes"})
    assert refusal(exc)[1] == "BadRequestException"
    with pytest.raises(ClientError) as exc:
        chime_unvalidated.update_account_settings(AccountId=account_id)
    assert "AccountSettings" in refusal(exc)[2]


def test_signin_delegate_groups_are_group_mappings(chime: Any, full_admin: AdminClient,
                                                   app_services: Services) -> None:
    engine = app_services.engine
    view = enterprise(engine, SETUP, ["ad.example"], directory=DirectoryKind.ACTIVE_DIRECTORY)
    from tests.builders import ad_user

    user = ad_user(engine, SETUP, view.id, "guid-1", "ann@ad.example", groups=["chime-users"])
    assert user.tier is None  # no mapped group yet: may not sign in
    chime.associate_signin_delegate_groups_with_account(
        AccountId=view.id, SigninDelegateGroups=[{"GroupName": "chime-users"}])
    assert engine.get_user(view.id, user.id).tier is Tier.PRO
    account = chime.get_account(AccountId=view.id)["Account"]
    assert account["AccountType"] == "EnterpriseDirectory"
    assert account["SigninDelegateGroups"] == [{"GroupName": "chime-users"}]
    groups = full_admin.get(f"/accounts/{view.id}/groups").get_json()["Groups"]
    assert [(g["GroupName"], g["LicenseType"]) for g in groups] == [("chime-users", "Pro")]
    chime.disassociate_signin_delegate_groups_from_account(AccountId=view.id,
                                                           GroupNames=["chime-users"])
    assert engine.get_user(view.id, user.id).tier is None
    with pytest.raises(ClientError) as exc:
        chime.disassociate_signin_delegate_groups_from_account(AccountId=view.id,
                                                               GroupNames=["never-mapped"])
    assert refusal(exc)[:2] == (404, "NotFoundException")


def test_read_only_admin_through_boto3(live_server: LiveServer, chime: Any) -> None:
    from tests.admin_client import admin_client

    account_id = chime.create_account(Name="R")["Account"]["AccountId"]
    reader = live_server.boto3(admin_client(live_server.app, "ReadOnly"))
    assert reader.get_account(AccountId=account_id)["Account"]["Name"] == "R"
    for call in (lambda: reader.update_account(AccountId=account_id, Name="x"),
                 lambda: reader.delete_account(AccountId=account_id),
                 lambda: reader.update_account_settings(
                     AccountId=account_id, AccountSettings={"EnableDialOut": False})):
        with pytest.raises(ClientError) as exc:
            call()
        assert refusal(exc)[:2] == (403, "ForbiddenException")
    manager = live_server.boto3(admin_client(live_server.app, "UserManagement"))
    manager.update_account_settings(AccountId=account_id,
                                    AccountSettings={"EnableDialOut": False})
    with pytest.raises(ClientError) as exc:
        manager.update_account(AccountId=account_id, Name="x")
    assert "chime:RenameAccount" in refusal(exc)[2]


def test_bad_signature_through_boto3(live_server: LiveServer, full_admin: AdminClient) -> None:
    wrong = live_server.boto3(access_key_id=full_admin.access_key_id,
                              secret_access_key="wrong-secret")
    with pytest.raises(ClientError) as exc:
        wrong.list_accounts()
    assert refusal(exc)[:2] == (401, "UnauthorizedClientException")
