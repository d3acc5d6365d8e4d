"""``bridge admin ...`` verbs, and the AWS CLI itself calling the bridge with the key
they print (the README's commands)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bridge.cli import main
from tests.admin_client import LiveServer
from tests.conftest import TEST_SECRET_KEY
from tests.functional.admin_api.conftest import AppFactory

AWS = str(Path(sys.executable).parent / "aws")


@pytest.fixture
def bridge_env(monkeypatch: pytest.MonkeyPatch, sqlite_url: str, tmp_path: Path) -> None:
    """The CLI uses the same database and secret key as ``make_app``."""
    monkeypatch.setenv("BRIDGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BRIDGE_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("BRIDGE_SECRET_KEY", TEST_SECRET_KEY)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def aws(server: LiveServer, key: dict[str, str], tmp_path: Path, *args: str
        ) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path),
           "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
           "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "1"}
    return subprocess.run([AWS, "chime", *args, "--endpoint-url", server.url],
                          capture_output=True, text=True, env=env, timeout=60, check=False)


def test_admin_verbs_and_the_aws_cli(bridge_env: None, make_app: AppFactory, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, key, err = run(capsys, "admin", "create-user", "alice", "--policy", "FullAccess")
    assert code == 0 and "cannot be shown again" in err
    assert key["UserName"] == "alice" and key["AccessKeyId"].startswith("AKIA")
    assert len(key["SecretAccessKey"]) == 40
    code, reader, _ = run(capsys, "admin", "create-user", "rob", "--policy", "ReadOnly")
    code, listed, _ = run(capsys, "admin", "list-users")
    assert [(u["UserName"], u["Policies"]) for u in listed] == [
        ("alice", ["FullAccess"]), ("rob", ["ReadOnly"])]
    assert key["SecretAccessKey"] not in json.dumps(listed)

    server = LiveServer(make_app()).start()
    try:
        created = aws(server, key, tmp_path, "create-account", "--name", "From the CLI")
        assert created.returncode == 0, created.stderr
        account_id = json.loads(created.stdout)["Account"]["AccountId"]
        listed_accounts = aws(server, reader, tmp_path, "list-accounts")
        assert json.loads(listed_accounts.stdout)["Accounts"][0]["Name"] == "From the CLI"
        denied = aws(server, reader, tmp_path, "delete-account", "--account-id", account_id)
        assert denied.returncode != 0 and "ForbiddenException" in denied.stderr

        policy = tmp_path / "deleter.json"
        policy.write_text(json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "chime:DeleteAccount", "Resource": "*"}]}))
        code, summary, _ = run(capsys, "admin", "attach-policy", "rob", "--policy",
                               str(policy))
        assert code == 0 and summary["Policies"] == ["ReadOnly", "deleter"]
        deleted = aws(server, reader, tmp_path, "delete-account", "--account-id", account_id)
        assert deleted.returncode == 0, deleted.stderr

        code, rotated, _ = run(capsys, "admin", "rotate-key", "alice")
        assert code == 0 and rotated["AccessKeyId"] != key["AccessKeyId"]
        old = aws(server, key, tmp_path, "list-accounts")
        assert old.returncode != 0 and "UnauthorizedClientException" in old.stderr
        assert aws(server, rotated, tmp_path, "list-accounts").returncode == 0

        code, _, _ = run(capsys, "admin", "delete-user", "rob")
        assert code == 0
        gone = aws(server, reader, tmp_path, "list-accounts")
        assert "UnauthorizedClientException" in gone.stderr
    finally:
        server.stop()


def test_admin_verbs_refuse_bad_input(bridge_env: None, make_app: AppFactory, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "admin", "create-user", "bad name!", "--policy", "ReadOnly")
    assert code == 1 and "admin user name" in err
    code, _, err = run(capsys, "admin", "create-user", "x", "--policy", "GodMode")
    assert code == 1 and "neither a managed policy" in err
    run(capsys, "admin", "create-user", "x", "--policy", "ReadOnly")
    code, _, err = run(capsys, "admin", "create-user", "x", "--policy", "ReadOnly")
    assert code == 1 and "already exists" in err
    code, _, err = run(capsys, "admin", "delete-user", "nobody")
    assert code == 1 and "does not exist" in err
    code, _, err = run(capsys, "admin", "detach-policy", "x", "FullAccess")
    assert code == 1 and "has no policy" in err
    code, summary, _ = run(capsys, "admin", "detach-policy", "x", "ReadOnly")
    assert code == 0 and summary["Policies"] == []


def test_create_user_takes_the_organisation(bridge_env: None, make_app: AppFactory,
                                            tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """``--aws-account-id`` puts the admin in an organisation (default: the setting
    ``admin_aws_account_id``); it sees only that organisation's accounts."""
    code, default, _ = run(capsys, "admin", "create-user", "dora", "--policy", "FullAccess")
    assert code == 0 and default["AwsAccountId"] == "000000000000"
    code, other, _ = run(capsys, "admin", "create-user", "otto", "--policy", "FullAccess",
                         "--aws-account-id", "555566667777", "--aws-account-name", "Otto Inc")
    assert code == 0 and other["AwsAccountId"] == "555566667777"
    code, _, err = run(capsys, "admin", "create-user", "bad", "--policy", "FullAccess",
                       "--aws-account-id", "12345")
    assert code == 1 and "12-digit" in err
    code, listed, _ = run(capsys, "admin", "list-users")
    assert {u["UserName"]: u["AwsAccountId"] for u in listed} == {
        "dora": "000000000000", "otto": "555566667777"}

    server = LiveServer(make_app()).start()
    try:
        created = aws(server, other, tmp_path, "create-account", "--name", "Otto's")
        assert created.returncode == 0, created.stderr
        account = json.loads(created.stdout)["Account"]
        assert account["AwsAccountId"] == "555566667777"
        mine = aws(server, default, tmp_path, "list-accounts")
        assert json.loads(mine.stdout)["Accounts"] == []
        hidden = aws(server, default, tmp_path, "get-account", "--account-id",
                     account["AccountId"])
        assert hidden.returncode != 0 and "NotFoundException" in hidden.stderr
    finally:
        server.stop()
