"""Secrets at rest: encrypted with a key from settings (Fernet: AES-128-CBC + HMAC-SHA256).

The key comes from ``BRIDGE_SECRET_KEY`` (may be ``file:/path``). Without one, and only with the
embedded database (no ``BRIDGE_DATABASE_URL``, so the database lives beside the key in the data
directory), a key file is created in the data directory on first start (mode 0600) and reused
after. With ``BRIDGE_DATABASE_URL`` set the key must be configured: each host would otherwise
generate its own key and could not read the secrets the others stored. Decryption failures
raise a ValueError that never includes the ciphertext or the key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from config import Settings, SettingsError

KEY_FILE_NAME = "secret.key"
_MAKE_KEY = ("python -c 'from cryptography.fernet import Fernet; "
             "print(Fernet.generate_key().decode())'")


def load_or_create_key(settings: Settings) -> bytes:
    """Return the Fernet key: the configured one, or the data directory's key file.

    Raises SettingsError (one line naming ``BRIDGE_SECRET_KEY``) when the configured key is
    malformed, or when ``BRIDGE_DATABASE_URL`` is set and no key is configured.
    """
    if settings.secret_key:
        key = settings.secret_key.encode("ascii")
        try:
            Fernet(key)
        except ValueError:
            raise SettingsError(
                f"BRIDGE_SECRET_KEY: must be 32 url-safe base64-encoded bytes "
                f"(make one with: {_MAKE_KEY})") from None
        return key
    if settings.database_url:
        # A shared database with a key per host: every host could write secrets that the
        # others cannot read. Only the embedded database keeps its key beside it.
        raise SettingsError(
            f"BRIDGE_SECRET_KEY: must be set when BRIDGE_DATABASE_URL is, the same on every "
            f"host and worker (make one with: {_MAKE_KEY}; may be file:/path)")
    path = Path(settings.data_dir) / KEY_FILE_NAME
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    # O_EXCL: two workers starting together must not write two different keys.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


class SecretBox:
    """Encrypts and decrypts short secrets (client secrets, bind passwords, access keys)."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)
        self._key = key

    def derive(self, purpose: str) -> bytes:
        """A 32-byte key for ``purpose`` (HMAC-SHA256 of the purpose under this box's key).

        Every worker and host with the same secret key derives the same value, and a value
        derived for one purpose says nothing about the key or about another purpose.
        """
        return hmac.new(self._key, b"bridge derived key: " + purpose.encode("utf-8"),
                        hashlib.sha256).digest()

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError):
            raise ValueError("stored secret cannot be decrypted with the configured key "
                             "(was BRIDGE_SECRET_KEY changed?)") from None
