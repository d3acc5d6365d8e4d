"""Wiring the console into the app (called by the composition root)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Flask

from bridge.api.console_credentials import ConsoleCredentials
from bridge.api.principals import PrincipalStore
from bridge.console.sessions import ConsoleSessions
from bridge.console.state import STATE_KEY, ConsoleState, bp
from bridge.engine.ad_sync_runs import DirectorySyncs
from bridge.services import Services

# The modules whose views register on the blueprint, in navigation order.
PAGE_MODULES = ("errors", "auth", "accounts", "users", "account_settings", "domains",
                "directory", "okta", "policies", "events", "support", "reports")


def register(app: Flask, svc: Services, *, credentials: ConsoleCredentials,
             verify_directory: Callable[[Any], None] | None = None,
             directory_syncs: DirectorySyncs | None = None) -> ConsoleState:
    """Build the console's state (its session store, limits) once and register its pages
    at ``/console``. ``credentials`` checks the admins' passwords and TOTP codes;
    ``verify_directory(connection)`` is ConnectDirectory's bind check (the AD door's),
    ``directory_syncs`` its runs on request (Sync now)."""
    settings = svc.settings
    state = ConsoleState(
        services=svc,
        credentials=credentials,
        principals=PrincipalStore(svc.engine.uow, svc.secrets, clock=svc.engine.now),
        sessions=ConsoleSessions(
            svc.engine.uow, svc.engine.now,
            idle=timedelta(seconds=settings.console_idle_timeout_seconds),
            max_age=timedelta(seconds=settings.console_session_max_seconds)),
        aws_account_id=settings.admin_aws_account_id,
        secure_cookie=settings.effective_public_url.startswith("https://"),
        max_failures_per_user=settings.console_sign_in_max_failures_per_user,
        max_failures_per_address=settings.console_sign_in_max_failures_per_address,
        failure_window=timedelta(seconds=settings.console_sign_in_failure_window_seconds),
        verify_directory=verify_directory,
        directory_syncs=directory_syncs,
    )
    app.extensions[STATE_KEY] = state
    for name in PAGE_MODULES:
        importlib.import_module(f"bridge.console.{name}")
    app.register_blueprint(bp)
    return state
