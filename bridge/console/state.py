"""The console door's dependencies (built once by :func:`bridge.console.setup.register`)
and its blueprint, on which every page module registers its views."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Blueprint, current_app, g

from bridge.api.console_credentials import ConsoleCredentials
from bridge.api.principals import PrincipalStore
from bridge.browser import csrf_field
from bridge.console.sessions import ConsoleSessions
from bridge.engine.ad_sync_runs import DirectorySyncs
from bridge.services import Services

STATE_KEY = "bridge.console"
COOKIE = "bridge_console"
COOKIE_PATH = "/console"

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static", static_url_path="/static")



@bp.context_processor
def _template_globals() -> dict[str, Any]:
    # Every console template: the CSRF field of its forms and the signed-in admin (None on
    # the sign-in pages), whose ``can(action, account_id)`` decides which controls show.
    return {"csrf_field": csrf_field, "admin": g.get("console_admin"),
            "account_pages": ACCOUNT_PAGES, "page_actions": PAGE_ACTIONS}


# The account navigation (under "Accounts > <account>"): (endpoint, label, section).
# Section None: a page of its own; "Settings": listed under the Settings heading, as the
# guide's navigation pane does. Page modules append to it when imported.
ACCOUNT_PAGES: list[tuple[str, str, str | None]] = []
# The admin API action a page of ACCOUNT_PAGES reads first: its link shows only to an admin
# allowed that action on the account (pages not listed here always show their link).
PAGE_ACTIONS: dict[str, str] = {}


@dataclass
class ConsoleState:
    """What the console's views need."""

    services: Services
    credentials: ConsoleCredentials
    principals: PrincipalStore
    sessions: ConsoleSessions
    aws_account_id: str
    secure_cookie: bool
    max_failures_per_user: int
    max_failures_per_address: int
    failure_window: timedelta
    # ConnectDirectory's bind check (the AD door's), as the admin API has it; None: the
    # Active directory page refuses to connect (UpstreamUnavailable).
    verify_directory: Callable[[Any], None] | None = None
    # The AD door's runs on request (Sync now); None: Sync now answers UpstreamUnavailable.
    directory_syncs: DirectorySyncs | None = None


def console_state() -> ConsoleState:
    state: ConsoleState = current_app.extensions[STATE_KEY]
    return state
