"""Operating the bridge: metrics, request ids and log context, readiness.

``setup.install(app, services)`` is called once by the composition root. The pieces:
:mod:`.context` (the current request), :mod:`.metrics` (every metric), :mod:`.http` (request
hooks, ``/readyz``, ``/metrics``), :mod:`.audit_metrics` (sign-in decisions from the audit
trail), :mod:`.serving` (gunicorn multiprocess mode and the separate metrics port).
"""
# This package file imports none of its modules: importing one (the log formatter imports
# ``context``) must not run the others (no import cycle through the package).
