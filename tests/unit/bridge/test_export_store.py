"""bridge/export_store.py: the filesystem archive store (whole or nothing) and the
pre-signed links (HMAC under a key derived from the secret key, expiry, tampering)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from bridge.crypto import SecretBox
from bridge.errors import Forbidden
from bridge.export_store import LINK_KEY_PURPOSE, FileExportStore, LinkExpired, LinkSigner
from tests.conftest import TEST_SECRET_KEY

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
EXPORT = "0b7f6a57-5b6e-4c55-9d62-7b0c4d1c9e11"


def signer(key: str = TEST_SECRET_KEY) -> LinkSigner:
    return LinkSigner(SecretBox(key.encode()).derive(LINK_KEY_PURPOSE), "https://b.test/")


def params(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    return parts.path, query["expires"][0], query["signature"][0]


def test_a_link_checks_until_it_expires() -> None:
    expiry = NOW + timedelta(days=6)
    url = signer().url(EXPORT, "archive.zip", expiry)
    path, expires, signature = params(url)
    assert url.startswith(f"https://b.test/data-exports/{EXPORT}/archive.zip?")
    assert path == f"/data-exports/{EXPORT}/archive.zip"
    assert signer().check(EXPORT, "archive.zip", expires, signature, NOW) == expiry
    with pytest.raises(LinkExpired):
        signer().check(EXPORT, "archive.zip", expires, signature, expiry)


@pytest.mark.parametrize("change", ["expires", "name", "export", "key", "missing"])
def test_a_changed_link_is_forbidden(change: str) -> None:
    _, expires, signature = params(signer().url(EXPORT, "archive.zip",
                                                NOW + timedelta(days=6)))
    export, name, checker = EXPORT, "archive.zip", signer()
    if change == "expires":
        expires = str(int(expires) + 1)
    elif change == "name":
        name = "users.jsonl"
    elif change == "export":
        export = EXPORT.replace("0b7f", "0b7e")
    elif change == "key":  # another deployment's secret key
        checker = signer("b3RoZXItdGVzdC1rZXktbmV2ZXItYS1zZWNyZXQtMDA=")
    else:
        signature = ""
    with pytest.raises(Forbidden) as refused:
        checker.check(export, name, expires, signature, NOW)
    assert not isinstance(refused.value, LinkExpired)


@pytest.mark.parametrize("expires, signature", [
    ("\u00b2", "a" * 64),  # isdigit() but not int()
    ("1\u0663", "a" * 64),  # an Arabic-Indic digit: int() takes it
    (None, "a" * 64), ("", "a" * 64), ("-1", "a" * 64), (" 1", "a" * 64),
    ("9" * 13, "a" * 64),
    ("1", "\u00e9" * 64),  # compare_digest raised TypeError for non-ASCII text
    ("1", "a" * 63), ("1", None), ("1", "g" * 64)])
def test_a_malformed_link_is_forbidden_not_an_error(expires: str | None,
                                                    signature: str | None) -> None:
    with pytest.raises(Forbidden) as refused:
        signer().check(EXPORT, "archive.zip", expires, signature, NOW)
    assert not isinstance(refused.value, LinkExpired)


def test_the_store_publishes_an_archive_whole_or_not_at_all(tmp_path: Path) -> None:
    store = FileExportStore(tmp_path / "exports")
    with pytest.raises(RuntimeError), store.writer(EXPORT) as fh:
        fh.write(b"half an archive")
        raise RuntimeError("the build failed")
    assert store.stored_keys() == [] and list(store.directory.iterdir()) == []
    with store.writer(EXPORT) as fh:
        fh.write(b"an archive")
        assert store.stored_keys() == []  # not visible before the block ends
    assert store.stored_keys() == [EXPORT]
    opened = store.open(EXPORT)
    assert opened is not None and opened.read() == b"an archive"
    opened.close()
    assert (store.directory / f"{EXPORT}.zip").stat().st_mode & 0o077 == 0
    store.delete(EXPORT)
    store.delete(EXPORT)  # already gone: no error
    assert store.open(EXPORT) is None


def test_store_keys_are_export_ids_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        FileExportStore(tmp_path).open("../secret")
