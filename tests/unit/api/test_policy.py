"""The policy evaluator: the guide's managed policies column by column, custom policies
in the guide's format, wildcards, explicit Deny, default deny."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.api.policy import (
    ACTION_TABLE,
    account_arn,
    is_allowed,
    managed_actions,
    parse_policy,
    policy_from_argument,
    statements_of,
)
from bridge.errors import ValidationError

# The guide's table, transcribed independently of the implementation (FA/UM/RO marks).
GUIDE = """
CreateAccount FA|RenameAccount FA|GetAccountSettings FA,UM,RO|UpdateAccountSettings FA,UM
ListAccounts FA,UM,RO|GetAccount FA,UM,RO|DeleteAccount FA|ListUsers FA,UM,RO
GetUser FA,UM,RO|GetUserByEmail FA,UM,RO|InviteUsers FA,UM|SuspendUsers FA,UM
ActivateUsers FA,UM|UpdateUserLicenses FA,UM|ResetPersonalPin FA,UM|LogoutUser FA,UM
ListAccountUsageReports FA,UM,RO|GetUserActivitySummary FA,UM,RO|GetMeetingDetails FA,UM
ListMeetingEvents FA,UM|ListMeetingReports FA,UM|ListDomains FA,UM,RO|AddDomain FA
GetDomain FA,UM,RO|DeleteDomain FA|AuthorizeDirectory FA|UnauthorizeDirectory FA
ListDirectories FA,UM,RO|ConnectDirectory FA|DisconnectDirectory FA|ListApiKeys FA
CreateApiKey FA|DeleteApiKey FA|GetAccountWithOpenIdConfig FA
UpdateAccountWithOpenIdConfig FA|DeleteAccountWithOpenIdConfig FA|ListGroups FA,UM,RO
AddOrUpdateGroups FA|DeleteGroups FA|SubmitSupportRequest FA,UM|AcceptDelegation FA
ValidateDelegation FA|ListDelegates FA,UM,RO|DeleteDelegation FA
"""
GUIDE_TABLE = {
    item.split()[0]: set(item.split()[1].split(","))
    for line in GUIDE.strip().splitlines() for item in line.split("|")
}
ABBREVIATION = {"FullAccess": "FA", "UserManagement": "UM", "ReadOnly": "RO"}
ARN = account_arn("000000000000", "acc-1")


def test_every_action_of_the_guide_is_known() -> None:
    assert set(ACTION_TABLE) == set(GUIDE_TABLE)
    assert len(GUIDE_TABLE) == 44


@pytest.mark.parametrize("managed", sorted(ABBREVIATION))
@pytest.mark.parametrize("action", sorted(GUIDE_TABLE))
def test_managed_policies_follow_the_table(managed: str, action: str) -> None:
    statements = statements_of([{"Managed": managed}])
    expected = ABBREVIATION[managed] in GUIDE_TABLE[action]
    assert is_allowed(statements, action, ARN) is expected
    assert is_allowed(statements, action, "*") is expected


@pytest.mark.parametrize("managed", sorted(ABBREVIATION))
@pytest.mark.parametrize("action", ["StartDataExport", "RetrieveDataExport"])
def test_every_managed_policy_grants_the_data_export_actions(managed: str,
                                                             action: str) -> None:
    # The guide's "Request attachments": "use one of the Amazon Chime managed policies
    # (FullAccess, UserManagement, or ReadOnly)".
    assert is_allowed(statements_of([{"Managed": managed}]), action, ARN)
    assert f"chime:{action}" in managed_actions(managed)


def test_lookup_events_is_full_access_only() -> None:
    assert "chime:LookupEvents" in managed_actions("FullAccess")
    assert "chime:LookupEvents" not in managed_actions("ReadOnly")
    assert "chime:LookupEvents" not in managed_actions("UserManagement")


def test_the_guides_read_only_example_parses_and_grants_reads_only() -> None:
    doc = {"Version": "2012-10-17", "Statement": [{"Action": [
        "chime:ListAccounts", "chime:GetAccount", "chime:GetAccountSettings",
        "chime:ListUsers", "chime:GetUser", "chime:GetUserByEmail",
        "chime:ListAccountUsageReportData", "chime:ListDomains", "chime:GetDomain",
        "chime:ListGroups", "chime:ListDirectories", "chime:GetAccountResource"],
        "Effect": "Allow", "Resource": "*"}]}
    statements = parse_policy(doc)
    assert is_allowed(statements, "GetUser", ARN)
    assert not is_allowed(statements, "InviteUsers", ARN)


def test_wildcards_statement_object_and_string_action() -> None:
    statements = parse_policy({"Version": "2012-10-17", "Statement": {
        "Effect": "Allow", "Action": "chime:List*", "Resource": "*"}})
    assert is_allowed(statements, "ListUsers", ARN)
    assert is_allowed(statements, "ListAccounts")
    assert not is_allowed(statements, "GetUser", ARN)
    question = parse_policy({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "chime:?etUser", "Resource": "*"}]})
    assert is_allowed(question, "GetUser", ARN)
    assert not is_allowed(question, "GetUserByEmail", ARN)


def test_action_names_are_case_insensitive_resources_are_not() -> None:
    statements = parse_policy({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "CHIME:getuser", "Resource": ARN}]})
    assert is_allowed(statements, "GetUser", ARN)
    assert not is_allowed(statements, "GetUser", ARN.upper())


def test_explicit_deny_wins_and_default_is_deny() -> None:
    statements = statements_of([
        {"Managed": "FullAccess"},
        {"Name": "no-deletes", "Document": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Action": "chime:Delete*", "Resource": "*"}]}}])
    assert is_allowed(statements, "CreateAccount")
    assert not is_allowed(statements, "DeleteAccount", ARN)
    assert not is_allowed(statements, "DeleteDomain", ARN)
    assert not is_allowed((), "GetUser", ARN)


def test_resource_scoped_to_one_account() -> None:
    statements = parse_policy({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "chime:*",
         "Resource": "arn:aws:chime::000000000000:account/acc-1"}]})
    assert is_allowed(statements, "GetUser", ARN)
    assert not is_allowed(statements, "GetUser", account_arn("000000000000", "acc-2"))
    # Actions that name no account need "Resource": "*".
    assert not is_allowed(statements, "CreateAccount", "*")


@pytest.mark.parametrize("document, complaint", [
    ("{not json", "not valid JSON"),
    ([], "JSON object"),
    ({"Statement": []}, "Version"),
    ({"Version": "2012-10-17"}, "Statement"),
    ({"Version": "2012-10-17", "Statement": [{"Action": "chime:*"}]}, "Effect"),
    ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow"}]}, "Action"),
    ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject"}]},
     "not a chime: action"),
    ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "chime:*",
                                              "Condition": {}}]}, "Condition"),
    # A reviewer reading the first "Effect" saw Deny; json.loads kept the last (Allow).
    ('{"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Effect": "Allow", '
     '"Action": "chime:*", "Resource": "*"}]}', "'Effect' appears twice"),
])
def test_malformed_policies_are_refused_with_a_reason(document: object,
                                                      complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        parse_policy(document)


def test_policy_argument_managed_or_file(tmp_path: Path) -> None:
    assert policy_from_argument("AmazonChimeReadOnly") == {"Managed": "ReadOnly"}
    path = tmp_path / "readers.json"
    doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                                                   "Action": "chime:Get*", "Resource": "*"}]}
    path.write_text(json.dumps(doc))
    assert policy_from_argument(str(path)) == {"Name": "readers", "Document": doc}
    with pytest.raises(ValidationError, match="neither a managed policy"):
        policy_from_argument(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValidationError, match="not valid JSON"):
        policy_from_argument(str(tmp_path / "bad.json"))
    # An operator reviewing this file reads Deny; json.loads kept the last "Effect".
    (tmp_path / "twice.json").write_text(
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "chime:*", '
        '"Resource": "*", "Effect": "Allow"}]}')
    with pytest.raises(ValidationError, match="'Effect' appears twice"):
        policy_from_argument(str(tmp_path / "twice.json"))


def test_delegation_actions_follow_the_guides_marks() -> None:
    """AcceptDelegation, ValidateDelegation, DeleteDelegation: FA; ListDelegates: FA, UM,
    RO; the owner's request (CreateDelegation, the bridge's extension): FA only."""
    from bridge.api.policy import managed_actions

    for policy, expected in (("FullAccess", {"AcceptDelegation", "ValidateDelegation",
                                             "ListDelegates", "DeleteDelegation",
                                             "CreateDelegation"}),
                             ("UserManagement", {"ListDelegates"}),
                             ("ReadOnly", {"ListDelegates"})):
        granted = {a.removeprefix("chime:") for a in managed_actions(policy)}
        delegation = {a for a in granted if "Delegat" in a}
        assert delegation == expected, policy
