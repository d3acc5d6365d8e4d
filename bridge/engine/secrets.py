"""What the engine needs from the secret box: sealing and opening short secrets.

The composition root passes its :class:`bridge.crypto.SecretBox` in; rooms that keep
secrets at rest (the AD connection records, the Okta configuration) seal and open through
it and never return, log or audit what they open.
"""

from __future__ import annotations

from typing import Protocol


class Sealer(Protocol):
    """Seals a short secret for storage and opens it again (ValueError when it does not
    open with the configured key)."""

    def seal(self, plaintext: str) -> str: ...

    def open(self, sealed: str) -> str: ...


class NoSealer:
    """The stand-in when the engine was built without a secret box (some tests): any use
    is a wiring error, raised at once."""

    def seal(self, plaintext: str) -> str:
        raise RuntimeError("the engine was built without a secret box (secrets=...)")

    def open(self, sealed: str) -> str:
        raise RuntimeError("the engine was built without a secret box (secrets=...)")
