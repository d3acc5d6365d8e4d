"""Outgoing mail over SMTP (invitations, support requests).

``BRIDGE_SMTP_URL`` is ``smtp://[user:pass@]host:port[?starttls=true]`` (or ``smtps://``
for TLS from the first byte, RFC 8314), or ``log:`` for development without a mail server:
each mail is then written whole (headers and body, invitation links included) to the log
at WARNING, logger ``bridge.mailer``, instead of being sent — never in production, as an
invitation link is a single-use credential. With ``starttls=true`` the connection is upgraded
with STARTTLS (RFC 3207) before AUTH, and the server certificate is verified (against
``BRIDGE_SMTP_CA_FILE`` when set, else the system CAs). Credentials in the URL are
percent-decoded and never appear in errors or logs.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from bridge.domain import one_line_text
from bridge.logs import VERBATIM
from config import Settings

log = logging.getLogger(__name__)
LOG_MAILER = "log:"


class MailError(Exception):
    """The message was not handed to the SMTP server (message is safe to log)."""


def send_mail(settings: Settings, to: str, subject: str, text: str) -> None:
    """Send one plain-text message; raises MailError when it could not be delivered to
    the configured SMTP server (or none is configured)."""
    if not settings.smtp_url:  # not counted: no mail is configured, none can fail
        raise MailError("no SMTP server is configured (BRIDGE_SMTP_URL)")
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    # A header is one line (RFC 5322 2.2), and EmailMessage refuses a line break with a
    # ValueError: a 500 after the change that sends the mail was committed. A subject built
    # from text stored before the one-line rule (an account's name) is made one line.
    message["Subject"] = one_line_text(subject)
    message.set_content(text)
    from bridge.observability import metrics

    if settings.smtp_url == LOG_MAILER:
        # Development: the whole mail, so a newcomer can copy the link from the log.
        # The text as written, not as encoded for the wire: quoted-printable would cut a
        # long link with soft line breaks ("=" at the end of a line).
        headers = "\n".join(f"{name}: {message[name]}" for name in ("From", "To", "Subject"))
        log.warning("mail not sent (BRIDGE_SMTP_URL=log:), written here instead:\n%s\n\n%s",
                    headers, text.rstrip("\n"), extra={VERBATIM: True})
        metrics.MAILS.labels("logged").inc()
        return
    parts = urlsplit(settings.smtp_url)
    host = parts.hostname or "localhost"
    secure = parts.scheme == "smtps"
    port = parts.port or (465 if secure else 25)
    options = parse_qs(parts.query)
    starttls = options.get("starttls", ["false"])[0].lower() in {"1", "true", "yes"}
    context = ssl.create_default_context(cafile=settings.smtp_ca_file or None)
    try:
        client: smtplib.SMTP
        if secure:
            client = smtplib.SMTP_SSL(host, port, timeout=settings.smtp_timeout_seconds,
                                      context=context)
        else:
            client = smtplib.SMTP(host, port, timeout=settings.smtp_timeout_seconds)
        with client:
            client.ehlo()
            if starttls:
                client.starttls(context=context)
                client.ehlo()
            if parts.username:
                client.login(unquote(parts.username), unquote(parts.password or ""))
            client.send_message(message)
    except smtplib.SMTPAuthenticationError:
        metrics.MAILS.labels("failed").inc()
        raise MailError(f"SMTP server {host}:{port} refused the login") from None
    except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
        metrics.MAILS.labels("failed").inc()
        raise MailError(f"SMTP server {host}:{port}: {type(exc).__name__}: "
                        f"{str(exc)[:200]}") from None
    metrics.MAILS.labels("sent").inc()


def send_invitation(settings: Settings, to: str, account_name: str, link: str) -> None:
    """The InviteUsers mail: the single-use registration link (valid 14 days)."""
    send_mail(
        settings, to, f"You are invited to join {account_name}",
        f"You have been invited to join the account \"{account_name}\".\n\n"
        f"Open this link to accept the invitation and register:\n\n{link}\n\n"
        "The link works once and expires in 14 days. If you did not expect this "
        "invitation, ignore this message.\n",
    )


def mail_support_request(settings: Settings, *, request_id: str, subject: str, sender: str,
                         account_id: str | None, contact: str | None,
                         description: str) -> str:
    """Mail a stored support request to ``BRIDGE_SUPPORT_EMAIL``; returns the mail status
    the request records: ``Sent``, ``Failed`` (logged; the request stays stored) or
    ``NotSent`` (no support address configured). ``sender`` says who asked, and where."""
    if not settings.support_email:
        return "NotSent"
    try:
        send_mail(settings, settings.support_email, f"[support {request_id}] {subject}",
                  f"Support request {request_id}\nFrom admin user: {sender}\n"
                  f"Account: {account_id or '-'}\nContact: {contact or '-'}\n\n"
                  f"{description}\n")
    except MailError as exc:
        log.warning("support request %s not mailed: %s", request_id, exc)
        return "Failed"
    return "Sent"
