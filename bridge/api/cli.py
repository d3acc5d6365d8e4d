"""``bridge admin ...``: manage admin principals (the guide's IAM users).

- ``bridge admin create-user NAME --policy FullAccess|UserManagement|ReadOnly|FILE.json``
  (repeatable) ``[--aws-account-id 111122223333] [--aws-account-name "Example Corp"]``
  prints ``{"UserName", "PrincipalId", "AwsAccountId", "AccessKeyId", "SecretAccessKey"}``
  once as JSON: the secret cannot be shown again. The AWS account id is the user's
  organisation (default: the setting ``admin_aws_account_id``); the name is what another
  organisation sees when asked to share an account's management.
  With ``--console-password`` it also asks for a console password (as ``set-password``).
- ``bridge admin set-password NAME [--password-file FILE]``: the console password (asked
  twice at the prompt, or the first line of FILE); ``bridge admin enable-mfa NAME`` prints
  the ``otpauth://`` URI of a new TOTP secret for an authenticator app (the console then
  asks for the code); ``bridge admin disable-mfa NAME``.
- ``bridge admin list-users`` (JSON, no secrets), ``bridge admin delete-user NAME``,
  ``bridge admin attach-policy NAME --policy ...``, ``bridge admin detach-policy NAME
  POLICY``, ``bridge admin rotate-key NAME`` (new key printed once; old keys deleted).

Exit codes follow ``bridge``: 0 success, 1 refused (message on stderr), 2 bad usage.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from config import Settings


def _store(settings: Settings) -> Any:
    from bridge.api.principals import PrincipalStore
    from bridge.crypto import SecretBox, load_or_create_key
    from bridge.engine import UnitOfWork
    from bridge.store.db import make_engine, make_session_factory

    sessions = make_session_factory(make_engine(settings.effective_database_url))
    return PrincipalStore(UnitOfWork(sessions), SecretBox(load_or_create_key(settings)),
                          organisation=settings.admin_aws_account_id)


def _credentials(settings: Settings) -> Any:
    from bridge.api.console_credentials import ConsoleCredentials
    from bridge.crypto import SecretBox, load_or_create_key
    from bridge.engine import UnitOfWork
    from bridge.store.db import make_engine, make_session_factory

    sessions = make_session_factory(make_engine(settings.effective_database_url))
    return ConsoleCredentials(UnitOfWork(sessions), SecretBox(load_or_create_key(settings)))


def _read_password(args: argparse.Namespace) -> str:
    """The new console password: the first line of ``--password-file`` (``-``: stdin), or
    typed twice at a prompt that does not echo. Checked before anything is stored."""
    from bridge.api.console_credentials import validate_password

    path = getattr(args, "password_file", None)
    if path:
        with (sys.stdin if path == "-" else open(path, encoding="utf-8")) as fh:
            password = fh.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Console password: ")
        if getpass.getpass("Again: ") != password:
            from bridge.errors import ValidationError

            raise ValidationError("The two passwords differ; nothing was changed.")
    validate_password(password)
    return password


def _actor() -> Any:
    from bridge.domain import Actor

    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return Actor(type="CliOperator", principal_id=f"cli:{who}", name=who, user_agent="bridge")


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def _create_user(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.api.policy import policy_from_argument

    policies = [policy_from_argument(p) for p in args.policy]
    password = _read_password(args) if args.console_password else None
    created = _store(settings).create(_actor(), args.name, policies,
                                      aws_account_id=args.aws_account_id,
                                      aws_account_name=args.aws_account_name)
    if password is not None:
        _credentials(settings).set_password(_actor(), args.name, password)
    _print(created.as_json())
    print("Store the secret now: it cannot be shown again.", file=sys.stderr)
    return 0


def _list_users(args: argparse.Namespace, settings: Settings) -> int:
    _print([p.summary() for p in _store(settings).list()])
    return 0


def _delete_user(args: argparse.Namespace, settings: Settings) -> int:
    _store(settings).delete(_actor(), args.name)
    print(f"deleted admin user {args.name}", file=sys.stderr)
    return 0


def _attach_policy(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.api.policy import policy_from_argument

    store = _store(settings)
    view = None
    for value in args.policy:
        view = store.attach_policy(_actor(), args.name, policy_from_argument(value))
    assert view is not None  # noqa: S101 - argparse requires at least one --policy
    _print(view.summary())
    return 0


def _detach_policy(args: argparse.Namespace, settings: Settings) -> int:
    _print(_store(settings).detach_policy(_actor(), args.name, args.policy_name).summary())
    return 0


def _rotate_key(args: argparse.Namespace, settings: Settings) -> int:
    _print(_store(settings).rotate_key(_actor(), args.name).as_json())
    print("The previous access keys are deleted; store the new secret now.", file=sys.stderr)
    return 0


def _set_password(args: argparse.Namespace, settings: Settings) -> int:
    password = _read_password(args)
    _credentials(settings).set_password(_actor(), args.name, password)
    print(f"console password set for admin user {args.name}", file=sys.stderr)
    return 0


def _enable_mfa(args: argparse.Namespace, settings: Settings) -> int:
    print(_credentials(settings).enable_mfa(_actor(), args.name))
    print("Add this URI to an authenticator app (as a QR code or by hand); the console asks "
          "for its code from the next sign-in on. It replaces any previous MFA device.",
          file=sys.stderr)
    return 0


def _disable_mfa(args: argparse.Namespace, settings: Settings) -> int:
    _credentials(settings).disable_mfa(_actor(), args.name)
    print(f"MFA removed for admin user {args.name}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``bridge admin`` and its actions to the ``bridge`` command."""
    admin = sub.add_parser("admin", help="admin API principals (IAM-style users and keys)")
    verbs = admin.add_subparsers(dest="admin_command", metavar="ACTION", required=True)
    policy_help = ("FullAccess, UserManagement, ReadOnly, or a path to a JSON policy "
                   "(repeatable)")

    create = verbs.add_parser("create-user", help="create an admin user; prints its access "
                                                  "key id and secret once (JSON)")
    create.add_argument("name")
    create.add_argument("--policy", action="append", required=True, help=policy_help)
    create.add_argument("--console-password", action="store_true",
                        help="also set a console password (prompted, or --password-file)")
    create.add_argument("--password-file", help="with --console-password: read the password "
                                                "from the first line of this file (- : stdin)")
    create.add_argument("--aws-account-id", default=None,
                        help="the user's organisation, a 12-digit AWS account id (default: "
                             "the setting admin_aws_account_id)")
    create.add_argument("--aws-account-name", default=None,
                        help="the organisation's name, shown to organisations asked to "
                             "share an account's management (sets or renames it)")
    create.set_defaults(handler=_create_user)

    password = verbs.add_parser("set-password", help="set the console password of an admin "
                                                     "user (prompted twice, or from a file)")
    password.add_argument("name")
    password.add_argument("--password-file", help="read the password from the first line of "
                                                  "this file (- : stdin)")
    password.set_defaults(handler=_set_password)

    mfa = verbs.add_parser("enable-mfa", help="give an admin user a TOTP MFA device; prints "
                                              "its otpauth:// URI")
    mfa.add_argument("name")
    mfa.set_defaults(handler=_enable_mfa)

    no_mfa = verbs.add_parser("disable-mfa", help="remove an admin user's MFA device")
    no_mfa.add_argument("name")
    no_mfa.set_defaults(handler=_disable_mfa)

    verbs.add_parser("list-users", help="list admin users (no secrets)").set_defaults(
        handler=_list_users)

    delete = verbs.add_parser("delete-user", help="delete an admin user and its keys")
    delete.add_argument("name")
    delete.set_defaults(handler=_delete_user)

    attach = verbs.add_parser("attach-policy", help="attach policies to an admin user")
    attach.add_argument("name")
    attach.add_argument("--policy", action="append", required=True, help=policy_help)
    attach.set_defaults(handler=_attach_policy)

    detach = verbs.add_parser("detach-policy", help="detach a policy (managed name or the "
                                                    "custom policy's file name)")
    detach.add_argument("name")
    detach.add_argument("policy_name")
    detach.set_defaults(handler=_detach_policy)

    rotate = verbs.add_parser("rotate-key", help="new access key (printed once); the old "
                                                 "keys stop working")
    rotate.add_argument("name")
    rotate.set_defaults(handler=_rotate_key)
