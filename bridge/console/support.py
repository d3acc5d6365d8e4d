"""Support: Submit request (SubmitSupportRequest)."""

from __future__ import annotations

from typing import Any

from flask import render_template

from bridge.console.access import signed_in
from bridge.console.state import bp


@bp.get("/support")
@signed_in
def support() -> Any:
    return render_template("console/support.html")
