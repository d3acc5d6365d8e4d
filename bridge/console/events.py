"""Event history: the audit trail (LookupEvents)."""

from __future__ import annotations

from typing import Any

from flask import render_template

from bridge.console.access import current_admin, signed_in
from bridge.console.state import bp


@bp.get("/events")
@signed_in
def events() -> Any:
    current_admin().require("LookupEvents", filtered=True)
    return render_template("console/events.html", events=[])
