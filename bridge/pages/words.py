"""What a refusal means for the person who met it, and what they can do next.

Doors say what happened (their own message); these are the next steps, by reason code, and
the words for the engine's sign-in denials, so the OIDC and AD doors say the same thing
for the same reason. A code without an entry gets :data:`DEFAULT_NEXT_STEP`.
"""

from __future__ import annotations

_ADMIN = "Contact your administrator and give them the reason code below."

DEFAULT_NEXT_STEP = ("Start the sign-in again. If it fails again, contact your "
                     "administrator and give them the reason code below.")

NEXT_STEPS: dict[str, str] = {
    # The person can fix it themselves.
    "invalid_email": "Check the address and enter it again.",
    "invalid_request": "Start the sign-in again from the sign-in form.",
    "invalid_credentials": "Check your email address and password and try again. If you "
                           "forgot your password, reset it the way your organisation "
                           "resets directory passwords.",
    "rate_limited": "Wait a few minutes before you try again.",
    "invalid_state": "Start the sign-in again from the sign-in form, in this browser.",
    "issuer_mismatch": "Start the sign-in again from the sign-in form.",
    "provider_unavailable": "Wait a minute and start the sign-in again.",
    "directory_unavailable": "Wait a minute and try again. If it keeps failing, tell your "
                             "administrator.",
    "password_expired": "Change your password the way your organisation changes directory "
                        "passwords, then sign in with the new one.",
    "locked_out": "Wait until your directory unlocks your account, or ask your "
                  "administrator to unlock it.",
    "directory_sign_in_not_available": "Your organisation does not use directory passwords "
                                       "here: go back and sign in with your email address "
                                       "only.",
    "email_not_verified": "Verify your email address with your identity provider, then "
                          "sign in again.",
    "request_too_large": "Go back and send the form again.",
    "cross_site_request": "Open the page again on this service and send the form from there.",
    "invalid_form_token": "Reload the page and send the form again.",
    # Invitations.
    "invitation_not_found": "Check that you opened the whole link from the invitation mail. "
                            "If you did, ask your administrator to invite you again.",
    "invitation_used": "The invitation was already accepted: sign in with your email "
                       "address.",
    "invitation_expired": "Ask your administrator to invite you again; the new mail has a "
                          "new link.",
    "invitation_withdrawn_directory": "Sign in with your email address on the sign-in "
                                      "page: it takes you to your organisation's "
                                      "directory. If the directory does not let you in, "
                                      "ask your administrator to add you there.",
    "invitation_withdrawn_claimed": "Sign in with your email address on the sign-in page: "
                                    "you join the organisation that claimed your domain.",
    # Only an administrator can fix these.
    "okta_not_configured": _ADMIN,
    "provider_not_configured": "This service has no identity provider for your address "
                               "yet. " + _ADMIN,
    "provider_misconfigured": _ADMIN,
    "unknown_issuer": "Start the sign-in from this service's sign-in form instead.",
    "unknown_account": "Start the sign-in from this service's sign-in form with your email "
                       "address.",
    "domain_not_claimed": _ADMIN,
    "not_in_directory": "Ask your administrator to assign you the application in your "
                        "organisation's directory.",
    "no_mapped_group": "Ask your administrator to add you to a group that gives access to "
                       "this service.",
    "suspended": _ADMIN,
    "disabled_in_directory": _ADMIN,
    "account_expired": _ADMIN,
    "released": "Sign in with an address of your own domain, or ask the administrator of "
                "your new organisation to invite you.",
    "directory_sign_in_required": "Go back and sign in with your organisation's directory "
                                  "password.",
    "wrong_account": "Sign in through your own organisation's sign-in: go back and enter "
                     "your email address.",
    "email_missing": _ADMIN,
}

# What happened, for the engine's sign-in denials (bridge.domain.DenyReason codes).
DENIALS: dict[str, str] = {
    "domain_not_claimed": "Your email address is not on a domain your organisation has "
                          "claimed.",
    "not_in_directory": "Your organisation's directory has not provisioned you for this "
                        "service. Ask your administrator to assign you the application.",
    "no_mapped_group": "You are not in any group that gives access to this service.",
    "suspended": "Your account is suspended. Contact your administrator.",
    "disabled_in_directory": "Your account is disabled in your organisation's directory.",
    "released": "You are no longer part of this organisation.",
    "directory_sign_in_required": "Your organisation requires signing in through its own "
                                  "directory.",
    "wrong_account": "You belong to another account than the one you signed in to.",
    "invalid_email": "The identity provider sent an email address that is not valid.",
}


def next_step(code: str) -> str:
    """What the person can do after a refusal with ``code``."""
    return NEXT_STEPS.get(code, DEFAULT_NEXT_STEP)


def denial(code: str) -> str:
    """What happened, for an engine denial ``code``."""
    return DENIALS.get(code, "Your sign-in was refused.")
