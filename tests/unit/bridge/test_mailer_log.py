"""``BRIDGE_SMTP_URL=log:``: each mail is written whole to the log instead of being sent
(development without a mail server: the README's quick start copies the invitation link
from there)."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from bridge.logs import make_handler
from bridge.mailer import MailError, send_invitation, send_mail
from bridge.observability import metrics
from config import SettingsError, load_settings


def _logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "bridge.mailer"]


def test_an_invitation_is_written_whole_to_the_log(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(env={"BRIDGE_SMTP_URL": "log:"},
                             overrides={"data_dir": tmp_path})
    link = "http://127.0.0.1:8000/invitations/AbC-123_xyz"
    before = metrics.MAILS.labels("logged")._value.get()
    with caplog.at_level(logging.INFO, logger="bridge.mailer"):
        send_invitation(settings, "ann@example.com", "Team Rocket", link)
    [text] = _logged(caplog)
    assert "To: ann@example.com" in text
    assert "From: no-reply@bridge.invalid" in text
    assert "Subject: You are invited to join Team Rocket" in text
    assert f"\n{link}\n" in text  # on a line of its own, to copy
    assert "The link works once" in text
    assert caplog.records[-1].levelno == logging.WARNING  # seen at the default log level
    assert metrics.MAILS.labels("logged")._value.get() == before + 1


def test_a_long_link_stays_whole_on_its_line(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    # As sent over SMTP the text is quoted-printable, which breaks lines over 76 characters
    # with "=": the log shows the text as written, so the link can be copied.
    settings = load_settings(env={"BRIDGE_SMTP_URL": "log:"},
                             overrides={"data_dir": tmp_path})
    link = "https://bridge.a-rather-long-host-name.example.com/invitations/" + "x" * 43
    with caplog.at_level(logging.INFO, logger="bridge.mailer"):
        send_invitation(settings, "ann@example.com", "Team", link)
    [text] = _logged(caplog)
    assert f"\n{link}\n" in text
    assert "=\n" not in text


def test_a_support_request_is_written_to_the_log(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(env={"BRIDGE_SMTP_URL": "log:",
                                  "BRIDGE_SMTP_FROM": "bridge@chime.test"},
                             overrides={"data_dir": tmp_path})
    with caplog.at_level(logging.INFO, logger="bridge.mailer"):
        send_mail(settings, "support@chime.test", "Support request: cannot join",
                  "Line one\nLine two\n")
    [text] = _logged(caplog)
    assert "To: support@chime.test" in text and "From: bridge@chime.test" in text
    assert "Line one\nLine two" in text


@pytest.mark.parametrize("value", ["log", "log:/tmp/mail", "logx:", "file:"])
def test_only_log_colon_is_the_log_mailer(tmp_path: Path, value: str) -> None:
    with pytest.raises(SettingsError, match="SMTP_URL"):
        load_settings(env={"BRIDGE_SMTP_URL": value}, overrides={"data_dir": tmp_path})


@pytest.mark.parametrize("smtp_url", ["log:", "smtp://127.0.0.1:9"])
def test_a_line_break_in_a_subject_is_a_space_not_an_error(tmp_path: Path, smtp_url: str,
                                                           caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    """An account named with a line break (stored before names were checked) or any
    stored subject: EmailMessage raised ValueError, a 500 after the InviteUsers or
    SubmitSupportRequest change was committed. The header stays one line (no Bcc: added)."""
    settings = load_settings(env={"BRIDGE_SMTP_URL": smtp_url,
                                  "BRIDGE_SMTP_TIMEOUT_SECONDS": "0.2"},
                             overrides={"data_dir": tmp_path})
    with caplog.at_level(logging.INFO, logger="bridge.mailer"):
        try:
            send_invitation(settings, "ann@example.com", "Team\r\nBcc: eve@evil.example",
                            "http://127.0.0.1:8000/invitations/x")
        except MailError:  # the closed port: the message was built, not sent
            assert smtp_url != "log:"
            return
    [text] = _logged(caplog)
    assert "Subject: You are invited to join Team Bcc: eve@evil.example\n" in text
    headers = text.split("\n\n")[0]
    assert "\nBcc:" not in headers and "\r" not in headers


def test_the_log_mailer_keeps_its_lines_in_the_text_format(tmp_path: Path) -> None:
    """The text log format escapes line breaks (no forged records) except in the log
    mailer's mail, whose link is copied from a line of its own."""
    settings = load_settings(env={"BRIDGE_SMTP_URL": "log:"},
                             overrides={"data_dir": tmp_path})
    out = io.StringIO()
    logger = logging.getLogger("bridge.mailer")
    handler = make_handler("text", out)
    logger.addHandler(handler)
    try:
        send_invitation(settings, "ann@example.com", "Team",
                        "http://127.0.0.1:8000/invitations/AbC")
    finally:
        logger.removeHandler(handler)
    assert "\nhttp://127.0.0.1:8000/invitations/AbC\n" in out.getvalue()
