"""Typed settings of the bridge: see :mod:`config.settings`."""

from config.settings import Settings, SettingsError, load_settings

__all__ = ["Settings", "SettingsError", "load_settings"]
