"""Wiring the admin API into the app (called by the composition root). The package file
imports none of its modules, so no module of the package is in an import cycle through it."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

from flask import Flask

import bridge.api as package
from bridge.api.data_export import install as install_data_export
from bridge.api.framework import install
from bridge.api.web import install as install_web
from bridge.engine.ad_sync_runs import DirectorySyncs
from bridge.services import Services

_FRAMEWORK_MODULES = {"framework", "sigv4", "policy", "principals", "errors", "cli",
                      "refusals", "setup"}


def load_actions() -> None:
    """Import every topic module of this package so their ``@action``s register."""
    for info in pkgutil.iter_modules(package.__path__):
        if info.name not in _FRAMEWORK_MODULES and not info.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{info.name}")


def register_admin_api(app: Flask, svc: Services, *,
                       verify_directory: Callable[[Any], None] | None = None,
                       verify_directory_bind: Callable[[Any], str | None] | None = None,
                       directory_syncs: DirectorySyncs | None = None) -> None:
    """Wire the admin API into ``app``: actions, ``/openapi.json``, the invitation link
    page, the data export download links. ``verify_directory(connection)`` is
    ConnectDirectory's bind check (the AD door's, passed in by the composition root;
    without it ConnectDirectory answers 503), ``verify_directory_bind(target)``
    AuthorizeDirectory's (likewise), ``directory_syncs`` the AD door's runs on request
    (SyncDirectory; likewise). (The background domain re-check is started by
    ``bridge serve``, see :func:`bridge.api.web.start_background`.)"""
    load_actions()
    install(app, svc, verify_directory=verify_directory,
            verify_directory_bind=verify_directory_bind, directory_syncs=directory_syncs)
    install_web(app, svc)
    install_data_export(app, svc)  # the pre-signed download links (unsigned route)
