"""A real SMTP server on 127.0.0.1 that keeps every message it accepts.

``SmtpServer`` runs ``aiosmtpd`` in a background thread on a free loopback port.
Accepted messages are parsed with ``email.policy.default`` into
``email.message.EmailMessage`` objects and kept, with their envelope, in a list
guarded by a ``threading.Condition`` so tests can block until mail arrives.

Options:

* ``starttls=True``: a throw-away CA and a server certificate for ``localhost``
  and ``127.0.0.1`` are generated into a temporary directory; the server offers
  STARTTLS and refuses MAIL/RCPT/DATA (and AUTH) before it. Clients verify the
  server with ``ca_cert_path``.
* ``auth=("user", "password")``: AUTH PLAIN and AUTH LOGIN are offered and
  MAIL is refused (530) until AUTH succeeded; only that pair is accepted. Without ``starttls`` AUTH
  is allowed over the plain connection; with it, only after STARTTLS.

``url`` renders the app's SMTP URL format:
``smtp://[user:pass@]127.0.0.1:<port>[?starttls=true]``.
"""

from __future__ import annotations

import datetime
import hmac
import ipaddress
import shutil
import ssl
import tempfile
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from urllib.parse import quote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.servers.ports import LOOPBACK, LoopbackServer, free_port

_START_ATTEMPTS = 3


@dataclass(frozen=True)
class ReceivedMessage:
    """One accepted message: SMTP envelope plus the parsed and raw content.

    ``raw`` is the DATA payload as received (CRLF line endings); ``message`` is
    parsed from it after converting CRLF to LF, so text bodies end in ``"\\n"``.
    """

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    raw: bytes


class _CollectingHandler:
    """aiosmtpd handler: gates MAIL on AUTH if required, collects every DATA payload."""

    def __init__(
        self,
        messages: list[ReceivedMessage],
        condition: threading.Condition,
        *,
        require_auth: bool,
    ) -> None:
        self._messages = messages
        self._condition = condition
        self._require_auth = require_auth

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        # Enforced here rather than with aiosmtpd's auth_required, which warns
        # (UserWarning) whenever AUTH is allowed without TLS.
        if self._require_auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = BytesParser(policy=default_policy).parsebytes(raw.replace(b"\r\n", b"\n"))
        assert isinstance(parsed, EmailMessage)
        received = ReceivedMessage(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            message=parsed,
            raw=raw,
        )
        with self._condition:
            self._messages.append(received)
            self._condition.notify_all()
        return "250 Message accepted for delivery"


class _Authenticator:
    """aiosmtpd authenticator accepting exactly one user/password (PLAIN, LOGIN)."""

    def __init__(self, username: str, password: str) -> None:
        self._username = username.encode("utf-8")
        self._password = password.encode("utf-8")

    def __call__(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: object,
    ) -> AuthResult:
        if mechanism not in ("LOGIN", "PLAIN") or not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = hmac.compare_digest(auth_data.login, self._username) & hmac.compare_digest(
            auth_data.password, self._password
        )
        return AuthResult(success=bool(ok), handled=False)


def _write_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """Create a CA and a CA-signed server cert for localhost/127.0.0.1.

    Returns ``(ca_cert, server_cert, server_key)`` PEM paths inside ``directory``.
    """
    now = datetime.datetime.now(datetime.UTC)
    not_before = now - datetime.timedelta(minutes=5)
    not_after = now + datetime.timedelta(days=2)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bridge test SMTP CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOOPBACK))]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    ca_path = directory / "ca.pem"
    cert_path = directory / "server.pem"
    key_path = directory / "server.key"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path


class SmtpServer(LoopbackServer):
    """SMTP server for tests on ``127.0.0.1:<port>``, collecting accepted mail.

    Use as ``with SmtpServer(starttls=True, auth=("u", "p")) as smtp:`` or call
    ``start()`` / ``stop()``. ``messages``, ``wait_for_messages`` and ``clear``
    are thread-safe; addresses and ``ca_cert_path`` are valid while running.
    """

    def __init__(
        self,
        *,
        starttls: bool = False,
        auth: tuple[str, str] | None = None,
        hostname: str = "localhost",
    ) -> None:
        """Prepare (but do not start) a server.

        Args:
            starttls: offer STARTTLS with a generated certificate and require it.
            auth: ``(username, password)`` required via AUTH PLAIN/LOGIN.
            hostname: the name the server uses for itself in its banner/EHLO.
        """
        self.starttls = starttls
        self.auth = auth
        self._hostname = hostname
        self._condition = threading.Condition()
        self._messages: list[ReceivedMessage] = []
        self._controller: Controller | None = None
        self._tmpdir: Path | None = None
        self._ca_cert_path: Path | None = None

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> SmtpServer:
        """Generate certificates if needed, start listening; return ``self``.

        On return the server has answered a connection (aiosmtpd checks this).

        Raises:
            RuntimeError: if already running.
            OSError: if no free port could be bound after several attempts.
        """
        if self._controller is not None:
            raise RuntimeError("SmtpServer is already started")
        try:
            tls_context: ssl.SSLContext | None = None
            if self.starttls:
                self._tmpdir = Path(tempfile.mkdtemp(prefix="bridge-smtp-"))
                ca, cert, key = _write_certificates(self._tmpdir)
                tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                tls_context.load_cert_chain(cert, key)
                self._ca_cert_path = ca
            authenticator = _Authenticator(*self.auth) if self.auth is not None else None
            handler = _CollectingHandler(
                self._messages, self._condition, require_auth=self.auth is not None
            )
            for attempt in range(_START_ATTEMPTS):
                controller = Controller(
                    handler,
                    hostname=LOOPBACK,
                    port=free_port(),
                    server_hostname=self._hostname,
                    ready_timeout=5.0,
                    tls_context=tls_context,
                    require_starttls=self.starttls,
                    authenticator=authenticator,
                    # AUTH waits for STARTTLS when TLS is on, else it is allowed in
                    # clear; MAIL is refused until AUTH by the handler (see above).
                    auth_require_tls=self.starttls,
                )
                try:
                    controller.start()
                except OSError:  # port taken between free_port() and bind
                    controller.stop(no_assert=True)
                    if attempt == _START_ATTEMPTS - 1:
                        raise
                    continue
                self._controller = controller
                break
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop listening and delete generated certificates.

        Idempotent; safe if never started or after a failed ``start()``. Received
        messages stay readable.
        """
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        self._ca_cert_path = None

    # -- messages ------------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMessage]:
        """A snapshot (copy) of the messages received so far, oldest first."""
        with self._condition:
            return list(self._messages)

    def clear(self) -> None:
        """Forget every received message."""
        with self._condition:
            self._messages.clear()

    def wait_for_messages(self, n: int, timeout: float = 10.0) -> list[ReceivedMessage]:
        """Block until at least ``n`` messages were received; return a snapshot of all.

        Raises:
            TimeoutError: if fewer than ``n`` arrived within ``timeout`` seconds;
                the message says how many did.
        """
        with self._condition:
            if not self._condition.wait_for(lambda: len(self._messages) >= n, timeout):
                got = len(self._messages)
                raise TimeoutError(f"expected {n} message(s) within {timeout:.1f}s, received {got}")
            return list(self._messages)

    def wait_for_message_to(self, address: str, timeout: float = 10.0) -> ReceivedMessage:
        """Block until a message to ``address`` was received; return the latest such.

        Raises:
            TimeoutError: if none arrived within ``timeout`` seconds.
        """
        def latest() -> ReceivedMessage | None:
            return next((m for m in reversed(self._messages) if address in m.rcpt_tos), None)

        with self._condition:
            if not self._condition.wait_for(lambda: latest() is not None, timeout):
                raise TimeoutError(f"no message to {address} within {timeout:.1f}s")
            found = latest()
            assert found is not None
            return found

    # -- addresses -----------------------------------------------------------

    def _running_port(self) -> int | None:
        return None if self._controller is None else int(self._controller.port)

    @property
    def ca_cert_path(self) -> Path:
        """PEM of the CA that signed the server certificate (``starttls=True`` only).

        Raises:
            RuntimeError: if the server runs without STARTTLS or is not running.
        """
        if self._ca_cert_path is None:
            raise RuntimeError("SmtpServer has no certificate (not running or starttls=False)")
        return self._ca_cert_path

    @property
    def url(self) -> str:
        """``smtp://[user:pass@]127.0.0.1:<port>[?starttls=true]`` (credentials %-encoded)."""
        credentials = ""
        if self.auth is not None:
            user, password = self.auth
            credentials = f"{quote(user, safe='')}:{quote(password, safe='')}@"
        query = "?starttls=true" if self.starttls else ""
        return f"smtp://{credentials}{LOOPBACK}:{self.port}{query}"
