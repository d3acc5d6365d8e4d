"""The administration console (issue 13): the guide's console pages at ``/console``,
server-rendered (Jinja2 templates, plain forms that work without JavaScript).

The console is the admin API's browser front: a signed-in administrator is an admin
principal (the guide's IAM user) signed in with its console password (and TOTP code when
enabled), and every console action is the admin API action of the same name, evaluated
under that principal's policies (:mod:`bridge.api.policy`) and recorded in the audit trail
with the same event name, the admin as principal and ``userIdentity.source`` ``console``.

Modules
-------
- :mod:`bridge.console.setup` — ``register(app, services, credentials=...)``, called by the
  composition root.
- :mod:`bridge.console.state` — the door's dependencies and the blueprint.
- :mod:`bridge.console.sessions` — console sessions (database rows; the cookie holds a
  random token) with idle and absolute timeouts.
- :mod:`bridge.console.access` — the signed-in admin: ``can(action, account_id)`` for
  templates, ``perform``/``read`` for views (authorize, call the engine, one audit event).
- :mod:`bridge.console.auth` — sign-in (password, then TOTP), throttling, sign-out.
- page modules: ``accounts``, ``users``, ``account_settings``, ``domains``, ``directory``
  (Active directory), ``okta`` (Okta single-sign on configuration), ``policies``, ``events``,
  ``support``, ``reports`` (Reports, Dashboard and a meeting's drill-down).

Adding a page (e.g. the Settings pages): a module of this package with views on
``state.bp`` (decorated with :func:`bridge.console.access.signed_in`; posts also with
:func:`bridge.browser.form_post`), templates under ``templates/console/`` extending
``console/account_base.html`` for an account's pages, an entry in
:data:`bridge.console.state.ACCOUNT_PAGES` for the account navigation, and the module name
in :data:`bridge.console.setup.PAGE_MODULES`. A page that only some admins may open also
names its first action in :data:`bridge.console.state.PAGE_ACTIONS`, so that its link shows
only to admins allowed that action on the account.
"""
