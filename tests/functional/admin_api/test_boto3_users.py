"""User operations driven through boto3 itself against a live server."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from bridge.app import Services
from bridge.domain import Actor, DirectoryKind, Tier
from bridge.errors import NotFound
from tests.admin_client import AdminClient
from tests.builders import ad_user, default_identity, enterprise
from tests.conftest import FakeClock
from tests.functional.admin_api.test_boto3_accounts import refusal

SETUP = Actor(type="TestSetup", principal_id="setup")


def lwa_account(svc: Services, domain: str = "corp.example",
                people: tuple[str, ...] = ("ann", "bob", "cy")) -> tuple[str, dict[str, str]]:
    """An EnterpriseLWA account whose people joined by signing in."""
    view = enterprise(svc.engine, SETUP, [domain])
    ids = {}
    for person in people:
        decision = svc.engine.decide_sign_in(default_identity(f"{person}@{domain}"), SETUP)
        assert decision.allowed and decision.user_id
        ids[person] = decision.user_id
    return view.id, ids


def test_list_get_users_with_email_filter_and_paging(chime: Any,
                                                     app_services: Services) -> None:
    account_id, ids = lwa_account(app_services, people=tuple(f"u{i:02d}" for i in range(7)))
    users = chime.list_users(AccountId=account_id)["Users"]
    assert len(users) == 7
    first = users[0]
    assert first["UserRegistrationStatus"] == "Registered"
    assert first["LicenseType"] == "Pro" and first["UserType"] == "PrivateUser"
    assert len(first["PersonalPIN"]) == 10
    seen: list[str] = []
    token = None
    while True:
        page = chime.list_users(AccountId=account_id, MaxResults=3,
                                **({"NextToken": token} if token else {}))
        seen += [u["UserId"] for u in page["Users"]]
        token = page.get("NextToken")
        if not token:
            break
    assert sorted(seen) == sorted(ids.values()) and len(seen) == 7
    found = chime.list_users(AccountId=account_id, UserEmail="U03@corp.example")["Users"]
    assert [u["UserId"] for u in found] == [ids["u03"]]
    user = chime.get_user(AccountId=account_id, UserId=ids["u03"])["User"]
    assert user["PrimaryEmail"] == "u03@corp.example"
    assert user["AccountId"] == account_id
    with pytest.raises(ClientError) as exc:
        chime.get_user(AccountId=account_id, UserId="no-such-user")
    status, code, message = refusal(exc)
    assert (status, code) == (404, "NotFoundException") and "no-such-user" in message
    with pytest.raises(ClientError) as exc:
        chime.list_users(AccountId=account_id, UserEmail="bad@")
    assert refusal(exc)[:2] == (400, "BadRequestException")
    assert chime.list_users(AccountId=account_id, UserType="SharedDevice")["Users"] == []


def test_update_user_and_batch_update_licenses(chime: Any, app_services: Services) -> None:
    account_id, ids = lwa_account(app_services)
    user = chime.update_user(AccountId=account_id, UserId=ids["ann"], LicenseType="Basic")
    assert user["User"]["LicenseType"] == "Basic"
    result = chime.batch_update_user(AccountId=account_id, UpdateUserRequestItems=[
        {"UserId": ids["bob"], "LicenseType": "Basic"},
        {"UserId": "ghost", "LicenseType": "Basic"}])
    assert result["UserErrors"] == [{"UserId": "ghost", "ErrorCode": "NotFound",
                                     "ErrorMessage": "User ghost was not found in the "
                                                     "account."}]
    assert app_services.engine.get_user(account_id, ids["bob"]).tier is Tier.BASIC
    with pytest.raises(ClientError) as exc:
        chime.update_user(AccountId=account_id, UserId=ids["cy"], LicenseType="ProTrial")
    assert refusal(exc)[:2] == (400, "BadRequestException")
    with pytest.raises(ClientError) as exc:
        chime.batch_update_user(AccountId=account_id, UpdateUserRequestItems=[
            {"UserId": ids["cy"], "LicenseType": "Basic"},
            {"UserId": ids["ann"], "LicenseType": "Plus"}])
    assert refusal(exc)[1] == "BadRequestException"
    # Nothing half-applied: cy stays Pro because the batch was refused as a whole.
    assert app_services.engine.get_user(account_id, ids["cy"]).tier is Tier.PRO
    with pytest.raises(ClientError) as exc:
        chime.update_user(AccountId=account_id, UserId="ghost", LicenseType="Pro")
    assert refusal(exc)[:2] == (404, "NotFoundException")


def test_directory_accounts_refuse_tier_changes(chime: Any, app_services: Services) -> None:
    engine = app_services.engine
    view = enterprise(engine, SETUP, ["ad.example"], directory=DirectoryKind.ACTIVE_DIRECTORY,
                      groups={"pro": Tier.PRO})
    user = ad_user(engine, SETUP, view.id, "g1", "dee@ad.example", groups=["pro"])
    for call in (lambda: chime.update_user(AccountId=view.id, UserId=user.id,
                                           LicenseType="Basic"),
                 lambda: chime.batch_update_user(AccountId=view.id, UpdateUserRequestItems=[
                     {"UserId": user.id, "LicenseType": "Basic"}])):
        with pytest.raises(ClientError) as exc:
            call()
        status, code, message = refusal(exc)
        assert (status, code) == (403, "ForbiddenException")
        assert "directory groups" in message
    assert engine.get_user(view.id, user.id).tier is Tier.PRO


def test_suspend_and_unsuspend(chime: Any, app_services: Services) -> None:
    account_id, ids = lwa_account(app_services)
    result = chime.batch_suspend_user(AccountId=account_id,
                                      UserIdList=[ids["ann"], ids["bob"], "ghost"])
    assert [(e["UserId"], e["ErrorCode"]) for e in result["UserErrors"]] == [
        ("ghost", "NotFound")]
    ann = chime.get_user(AccountId=account_id, UserId=ids["ann"])["User"]
    assert ann["UserRegistrationStatus"] == "Suspended"
    decision = app_services.engine.decide_sign_in(default_identity("ann@corp.example"), SETUP)
    assert not decision.allowed and decision.reason == "suspended"
    result = chime.batch_unsuspend_user(AccountId=account_id,
                                        UserIdList=[ids["ann"], ids["cy"]])
    assert [(e["UserId"], e["ErrorCode"]) for e in result["UserErrors"]] == [
        (ids["cy"], "Conflict")]
    assert chime.get_user(AccountId=account_id, UserId=ids["ann"])["User"][
        "UserRegistrationStatus"] == "Registered"


def test_batch_suspend_user_on_a_team_account_removes_the_users(
        chime: Any, app_services: Services, clock: FakeClock) -> None:
    """The AWS model: users suspended from a Team account are disassociated from it and
    keep using the service as free users, each with their own trial state."""
    engine = app_services.engine
    account_id = chime.create_account(Name="Team")["Account"]["AccountId"]
    # ann signed up on her own first (her trial runs), then joined by invitation (trial
    # over); bob was invited but never signed up (no trial yet).
    engine.decide_sign_in(default_identity("ann@mail.example"), SETUP)
    invites, _ = engine.invite_users(SETUP, account_id, ["ann@mail.example",
                                                          "bob@mail.example"])
    by_mail = {i.email: i for i in invites}
    engine.accept_invitation(SETUP, by_mail["ann@mail.example"].token)
    ann, bob = by_mail["ann@mail.example"].user_id, by_mail["bob@mail.example"].user_id
    clock.advance(days=1)
    result = chime.batch_suspend_user(AccountId=account_id, UserIdList=[ann, bob, "ghost"])
    assert [(e["UserId"], e["ErrorCode"]) for e in result["UserErrors"]] == [
        ("ghost", "NotFound")]
    assert chime.list_users(AccountId=account_id)["Users"] == []
    for user_id in (ann, bob):
        with pytest.raises(ClientError) as exc:
            chime.get_user(AccountId=account_id, UserId=user_id)
        assert refusal(exc)[0] == 404
    # ann: unmanaged, still signs in, her trial ended when she joined (Basic).
    decision = engine.decide_sign_in(default_identity("ann@mail.example"), SETUP)
    assert decision.allowed and decision.account_id is None and decision.tier is Tier.BASIC
    # bob: his invitation is withdrawn; his own trial starts when he first signs up.
    with pytest.raises(NotFound):
        engine.accept_invitation(SETUP, by_mail["bob@mail.example"].token)
    decision = engine.decide_sign_in(default_identity("bob@mail.example"), SETUP)
    assert decision.allowed and decision.account_id is None and decision.tier is Tier.PRO
    assert decision.user_id == bob
    # One SuspendUsers event (the action policies check), marked as a removal.
    events = [e for e in _events(app_services) if e["eventName"] == "SuspendUsers"]
    assert len(events) == 1 and events[0]["errorCode"] is None
    assert events[0]["responseElements"] == {"succeeded": [ann, bob], "failed": ["ghost"],
                                             "removedFromAccount": True}


def test_activate_is_refused_on_a_team_account(chime: Any) -> None:
    account_id = chime.create_account(Name="Team")["Account"]["AccountId"]
    with pytest.raises(ClientError) as exc:
        chime.batch_unsuspend_user(AccountId=account_id, UserIdList=["anyone"])
    status, code, message = refusal(exc)
    assert (status, code) == (403, "ForbiddenException")
    assert "removed, not suspended" in message


def _events(svc: Services) -> list[dict[str, Any]]:
    from bridge import audit
    from bridge.store.db import transaction

    with transaction(svc.sessions) as session:
        events, _ = audit.lookup(session, audit.EventQuery(limit=1000))
    return list(events)


def test_reset_personal_pin_and_logout(chime: Any, app_services: Services,
                                       clock: FakeClock) -> None:
    account_id, ids = lwa_account(app_services)
    before = chime.get_user(AccountId=account_id, UserId=ids["ann"])["User"]["PersonalPIN"]
    after = chime.reset_personal_pin(AccountId=account_id, UserId=ids["ann"])["User"][
        "PersonalPIN"]
    assert after != before and len(after) == 10 and after.isdigit()
    issued = clock.now
    clock.advance(seconds=1)
    assert app_services.engine.check_session(ids["ann"], issued).valid
    response = chime.logout_user(AccountId=account_id, UserId=ids["ann"])
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert not app_services.engine.check_session(ids["ann"], issued).valid
    clock.advance(seconds=1)
    assert app_services.engine.check_session(ids["ann"], clock.now + timedelta(0)).valid
    with pytest.raises(ClientError) as exc:
        chime.logout_user(AccountId=account_id, UserId="ghost")
    assert refusal(exc)[:2] == (404, "NotFoundException")


def test_invite_users_without_mail_server_reports_email_failed(chime: Any,
                                                               app_services: Services) -> None:
    account_id = chime.create_account(Name="Team")["Account"]["AccountId"]
    enterprise(app_services.engine, SETUP, ["taken.example"], name="Other")
    invites = chime.invite_users(AccountId=account_id,
                                 UserEmailList=["New@Team.example", "x@taken.example"])
    assert invites["ResponseMetadata"]["HTTPStatusCode"] == 201
    by_email = {i["EmailAddress"]: i for i in invites["Invites"]}
    assert by_email["new@team.example"]["Status"] == "Pending"
    assert by_email["new@team.example"]["EmailStatus"] == "Failed"  # no SMTP configured
    assert by_email["x@taken.example"]["Status"] == "Failed"
    users = chime.list_users(AccountId=account_id)["Users"]
    assert [(u["PrimaryEmail"], u["UserRegistrationStatus"], u["UserInvitationStatus"])
            for u in users] == [("new@team.example", "Unregistered", "Pending")]
    with pytest.raises(ClientError) as exc:
        chime.invite_users(AccountId=account_id, UserEmailList=["not an email"])
    status, code, message = refusal(exc)
    assert (status, code) == (400, "BadRequestException") and "not an email" in message


def test_an_invitation_withdrawn_by_another_accounts_claim_is_failed(
        chime: Any, app_services: Services) -> None:
    account_id = chime.create_account(Name="Team")["Account"]["AccountId"]
    chime.invite_users(AccountId=account_id, UserEmailList=["ann@soon.example"])
    enterprise(app_services.engine, SETUP, ["soon.example"], name="Claimer")
    [user] = chime.list_users(AccountId=account_id)["Users"]
    assert (user["UserRegistrationStatus"], user["UserInvitationStatus"]) == (
        "Unregistered", "Failed")
    got = chime.get_user(AccountId=account_id, UserId=user["UserId"])["User"]
    assert got["UserInvitationStatus"] == "Failed"


def test_invite_users_in_enterprise_account_is_refused(chime: Any,
                                                       app_services: Services) -> None:
    account_id, _ = lwa_account(app_services, people=())
    with pytest.raises(ClientError) as exc:
        chime.invite_users(AccountId=account_id, UserEmailList=["z@corp.example"])
    assert refusal(exc)[:2] == (403, "ForbiddenException")


def test_get_user_by_email_primary_or_alias(full_admin: AdminClient,
                                            app_services: Services) -> None:
    engine = app_services.engine
    view = enterprise(engine, SETUP, ["ad.example", "alias.example"],
                      directory=DirectoryKind.ACTIVE_DIRECTORY, groups={"pro": Tier.PRO})
    user = ad_user(engine, SETUP, view.id, "g1", "eve@ad.example",
                   ["eve@alias.example"], groups=["pro"])
    for email in ("eve@ad.example", "EVE@alias.example"):
        found = full_admin.get("/users", query={"email": email})
        assert found.status_code == 200
        assert found.get_json()["User"]["UserId"] == user.id
        assert found.get_json()["User"]["Aliases"] == ["eve@alias.example"]
    assert full_admin.get("/users", query={"email": "nobody@ad.example"}).status_code == 404
    assert full_admin.get("/users", query={"email": "bad"}).status_code == 400
    assert full_admin.get("/users").status_code == 400
    from tests.admin_client import admin_client

    scoped = admin_client(full_admin.flask_client.application, {
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "chime:Get*",
                                                "Resource": "arn:aws:chime::000000000000:"
                                                            "account/elsewhere"}]})
    # The user is outside the caller's accounts: not found, as if it did not exist.
    assert scoped.get("/users", query={"email": "eve@ad.example"}).status_code == 404


def test_unmanaged_users_are_not_found_by_email(full_admin: AdminClient,
                                                app_services: Services) -> None:
    app_services.engine.decide_sign_in(default_identity("solo@free.example"), SETUP)
    assert full_admin.get("/users", query={"email": "solo@free.example"}).status_code == 404


def test_every_boto3_call_writes_exactly_one_audit_event(chime: Any,
                                                         app_services: Services) -> None:
    """One event per call, success or refusal, named with the guide's action."""
    account_id, ids = lwa_account(app_services)
    calls: list[tuple[str, Any]] = []

    def call(expected_event: str, fn: Any, **kwargs: Any) -> None:
        try:
            response = fn(**kwargs)
        except ClientError as exc:
            response = exc.response
        calls.append((expected_event, response["ResponseMetadata"]["RequestId"]))

    call("CreateAccount", chime.create_account, Name="Audit")
    call("ListAccounts", chime.list_accounts)
    call("GetAccount", chime.get_account, AccountId=account_id)
    call("RenameAccount", chime.update_account, AccountId=account_id, Name="Renamed")
    call("GetAccountSettings", chime.get_account_settings, AccountId=account_id)
    call("UpdateAccountSettings", chime.update_account_settings, AccountId=account_id,
         AccountSettings={"EnableDialOut": False})
    call("ListUsers", chime.list_users, AccountId=account_id)
    call("GetUser", chime.get_user, AccountId=account_id, UserId=ids["ann"])
    call("UpdateUserLicenses", chime.update_user, AccountId=account_id, UserId=ids["ann"],
         LicenseType="Basic")
    call("UpdateUserLicenses", chime.batch_update_user, AccountId=account_id,
         UpdateUserRequestItems=[{"UserId": ids["bob"], "LicenseType": "Basic"}])
    call("SuspendUsers", chime.batch_suspend_user, AccountId=account_id,
         UserIdList=[ids["cy"]])
    call("ActivateUsers", chime.batch_unsuspend_user, AccountId=account_id,
         UserIdList=[ids["cy"]])
    call("ResetPersonalPin", chime.reset_personal_pin, AccountId=account_id,
         UserId=ids["ann"])
    call("LogoutUser", chime.logout_user, AccountId=account_id, UserId=ids["ann"])
    call("InviteUsers", chime.invite_users, AccountId=account_id,
         UserEmailList=["z@corp.example"])  # refused: enterprise account
    call("AddOrUpdateGroups", chime.associate_signin_delegate_groups_with_account,
         AccountId=account_id, SigninDelegateGroups=[{"GroupName": "g"}])
    call("DeleteGroups", chime.disassociate_signin_delegate_groups_from_account,
         AccountId=account_id, GroupNames=["g"])
    call("GetUser", chime.get_user, AccountId=account_id, UserId="ghost")  # refused
    call("DeleteAccount", chime.delete_account, AccountId=account_id)  # refused: domain
    from bridge import audit
    from bridge.store.db import transaction

    with transaction(app_services.sessions) as session:
        events, _ = audit.lookup(session, audit.EventQuery(limit=1000))
    by_request: dict[str, list[str]] = {}
    for event in events:
        by_request.setdefault(event["requestID"], []).append(event["eventName"])
    for expected, request_id in calls:
        assert by_request.get(request_id) == [expected], (expected, by_request.get(request_id))


def test_list_users_paginator(chime: Any, app_services: Services) -> None:
    account_id, ids = lwa_account(app_services, people=tuple(f"p{i}" for i in range(5)))
    pages = chime.get_paginator("list_users").paginate(AccountId=account_id,
                                                       PaginationConfig={"PageSize": 2})
    assert sorted(u["UserId"] for page in pages for u in page["Users"]) == sorted(ids.values())
