"""Server-side verification of AWS Signature Version 4 (service ``chime``).

The expected signature is computed by botocore's own ``SigV4Auth`` from the request as it
arrived (the same code that signs boto3's and the AWS CLI's requests), so the canonical
request, the string to sign and the key derivation are exactly what clients produce. We
only restrict the canonical headers to the ones the client listed in ``SignedHeaders``
(botocore, when signing, picks them itself) and pin the timestamp to the request's
``X-Amz-Date``. The signature comparison is constant-time (:func:`hmac.compare_digest`).

Reference: "Signature Version 4 signing process" (AWS General Reference): the
``Authorization: AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request,
SignedHeaders=...,Signature=...`` header, ``X-Amz-Date`` in ``YYYYMMDDTHHMMSSZ`` form and
the payload hash (``x-amz-content-sha256`` when sent, else the SHA-256 of the body).

Every failure raises :class:`~bridge.errors.Unauthenticated` with a message that says what
was wrong and never contains the secret or the expected signature.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from bridge.errors import Unauthenticated

SERVICE = "chime"
ALGORITHM = "AWS4-HMAC-SHA256"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*Signature=(?P<signature>[0-9a-f]{64})\s*$"
)
_KEY_ID_RE = re.compile(r"^[A-Z0-9]{16,32}$")


@dataclass(frozen=True)
class SignedRequestInfo:
    """What the ``Authorization`` header claims (not yet verified)."""

    access_key_id: str
    scope_date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(header: str | None) -> SignedRequestInfo:
    """Parse the ``Authorization`` header of a SigV4-signed request.

    Raises Unauthenticated for a missing header, another scheme, or a malformed credential
    scope (a wrong service or terminator included).
    """
    if not header:
        raise Unauthenticated("The request is not signed: the Authorization header is "
                              "missing (sign requests with AWS Signature Version 4).")
    match = _AUTH_RE.match(header.strip())
    if match is None:
        raise Unauthenticated("The Authorization header is not an AWS4-HMAC-SHA256 "
                              "signature (Credential=..., SignedHeaders=..., Signature=...).")
    parts = match.group("credential").split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise Unauthenticated("The credential scope must be "
                              "ACCESS_KEY_ID/DATE/REGION/chime/aws4_request.")
    key_id, scope_date, region, service, _ = parts
    if not _KEY_ID_RE.match(key_id):
        raise Unauthenticated("The access key id in the credential is malformed.")
    if service != SERVICE:
        raise Unauthenticated(f"The request is signed for service {service!r}; this API "
                              f"is service {SERVICE!r}.")
    if not re.fullmatch(r"\d{8}", scope_date) or not region:
        raise Unauthenticated("The credential scope date or region is malformed.")
    signed = tuple(match.group("signed").split(";"))
    if any(h != h.lower() or not h for h in signed) or list(signed) != sorted(signed):
        raise Unauthenticated("SignedHeaders must be lowercase header names in sorted order.")
    for required in ("host", "x-amz-date"):
        if required not in signed:
            raise Unauthenticated(f"The {required} header must be signed.")
    return SignedRequestInfo(key_id, scope_date, region, service, signed,
                             match.group("signature"))


def parse_amz_date(value: str | None) -> datetime:
    """Parse ``X-Amz-Date``; raises Unauthenticated when it is missing or malformed."""
    if not value:
        raise Unauthenticated("The X-Amz-Date header is missing.")
    try:
        return datetime.strptime(value, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise Unauthenticated("X-Amz-Date must look like 20261124T213000Z.") from None


class _ServerSideSigV4(SigV4Auth):
    """botocore's signer, told which headers the client signed."""

    def __init__(self, credentials: Credentials, region: str,
                 signed_headers: tuple[str, ...]) -> None:
        super().__init__(credentials, SERVICE, region)
        self._signed_headers = signed_headers

    def headers_to_sign(self, request: Any) -> HTTPHeaders:
        headers = HTTPHeaders()
        for name in self._signed_headers:
            value = request.headers.get(name)
            if value is None:
                raise Unauthenticated(f"The signed header {name!r} is not in the request.")
            headers[name] = value
        return headers


@dataclass(frozen=True)
class IncomingRequest:
    """The parts of an HTTP request that SigV4 covers, as they came over the wire.

    ``raw_path`` is the path exactly as sent (percent-encoding kept) and ``raw_query`` the
    query string exactly as sent: SigV4 signs those bytes, not their decoded meaning.
    """

    method: str
    raw_path: str
    raw_query: str
    headers: Mapping[str, str]
    body: bytes


def verify(request: IncomingRequest, info: SignedRequestInfo, secret_access_key: str, *,
           now: datetime, max_skew: timedelta) -> datetime:
    """Verify the signature of ``request``; returns the request's signing time.

    Raises Unauthenticated when the date is missing, malformed, outside ``max_skew`` of
    ``now`` or not the credential scope's day, when the body does not match the signed
    payload hash, or when the signature does not match.
    """
    headers = {k.lower(): v for k, v in request.headers.items()}
    signed_at = parse_amz_date(headers.get("x-amz-date"))
    if abs(now - signed_at) > max_skew:
        raise Unauthenticated(
            f"Signature expired or not yet valid: X-Amz-Date {headers['x-amz-date']} is more "
            f"than {int(max_skew.total_seconds())} s from the server time "
            f"{now.strftime(AMZ_DATE_FORMAT)}.")
    if info.scope_date != headers["x-amz-date"][:8]:
        raise Unauthenticated("The credential scope date is not the day of X-Amz-Date.")
    body_hash = hashlib.sha256(request.body).hexdigest()
    claimed = headers.get("x-amz-content-sha256")
    if claimed is not None:
        if claimed == UNSIGNED_PAYLOAD:
            raise Unauthenticated("Unsigned payloads are not accepted; sign the body.")
        # As bytes: compare_digest raises TypeError for non-ASCII text (a header's latin-1
        # "é" was a 500 before the signature was checked).
        if not hmac.compare_digest(claimed.lower().encode(), body_hash.encode()):
            raise Unauthenticated("The body does not match x-amz-content-sha256.")
    url = f"http://{headers.get('host', 'localhost')}{request.raw_path or '/'}"
    if request.raw_query:
        url += "?" + request.raw_query
    aws_request = AWSRequest(method=request.method, url=url, data=request.body,
                             headers=dict(request.headers))
    aws_request.context["timestamp"] = headers["x-amz-date"]
    signer = _ServerSideSigV4(Credentials(info.access_key_id, secret_access_key),
                              info.region, info.signed_headers)
    canonical = signer.canonical_request(aws_request)
    expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
    if not hmac.compare_digest(expected.encode(), info.signature.encode()):
        raise Unauthenticated("The request signature does not match the signature computed "
                              "with the access key's secret (check the secret key and that "
                              "the request was not changed after signing).")
    return signed_at
