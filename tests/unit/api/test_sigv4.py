"""Server-side SigV4 verification against requests signed by botocore itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import bridge.api.sigv4 as sigv4
from bridge.errors import Unauthenticated

KEY_ID, SECRET = "AKIATESTKEY000000001", "s3cr3t/secret+key"
SKEW = timedelta(minutes=5)


def signed(method: str = "POST", path: str = "/accounts/a%40b/users",
           query: str = "operation=add", body: bytes = b'{"UserEmailList": ["x@y.com"]}',
           headers: dict[str, str] | None = None, service: str = "chime",
           region: str = "eu-west-1") -> sigv4.IncomingRequest:
    url = f"http://127.0.0.1:8000{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    SigV4Auth(Credentials(KEY_ID, SECRET), service, region).add_auth(request)
    all_headers = {"Host": "127.0.0.1:8000", **dict(request.headers.items())}
    return sigv4.IncomingRequest(method, path, query, all_headers, body)


def check(request: sigv4.IncomingRequest, secret: str = SECRET,
          now: datetime | None = None) -> datetime:
    info = sigv4.parse_authorization(request.headers["Authorization"])
    return sigv4.verify(request, info, secret, now=now or datetime.now(UTC), max_skew=SKEW)


def test_a_botocore_signature_verifies() -> None:
    request = signed()
    signed_at = check(request)
    assert abs(datetime.now(UTC) - signed_at) < timedelta(seconds=5)
    assert sigv4.parse_authorization(request.headers["Authorization"]).region == "eu-west-1"


def test_get_without_body_and_with_encoded_query() -> None:
    check(signed("GET", "/accounts", "name=Team%20A&max-results=10", b""))


def test_content_sha256_header_is_checked() -> None:
    body = b'{"Name": "x"}'
    import hashlib

    good = signed(body=body, headers={"x-amz-content-sha256":
                                      hashlib.sha256(body).hexdigest()})
    check(good)
    tampered = sigv4.IncomingRequest(good.method, good.raw_path, good.raw_query,
                                     good.headers, b'{"Name": "y"}')
    with pytest.raises(Unauthenticated, match="does not match x-amz-content-sha256"):
        check(tampered)
    unsigned = signed(body=body, headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    with pytest.raises(Unauthenticated, match="Unsigned payloads"):
        check(unsigned)
    # A header value is latin-1 text: a non-ASCII one made compare_digest raise (a 500).
    for odd in ("\u00e9" * 64, "\u00e9"):
        bad = sigv4.IncomingRequest(good.method, good.raw_path, good.raw_query,
                                    {**good.headers, "x-amz-content-sha256": odd}, body)
        with pytest.raises(Unauthenticated, match="does not match x-amz-content-sha256"):
            check(bad)


@pytest.mark.parametrize("change", ["body", "path", "query", "method", "header"])
def test_any_change_after_signing_breaks_the_signature(change: str) -> None:
    r = signed()
    parts = {"method": r.method, "raw_path": r.raw_path, "raw_query": r.raw_query,
             "headers": dict(r.headers), "body": r.body}
    if change == "body":
        parts["body"] = b'{"UserEmailList": ["z@y.com"]}'
    elif change == "path":
        parts["raw_path"] = "/accounts/other/users"
    elif change == "query":
        parts["raw_query"] = "operation=suspend"
    elif change == "method":
        parts["method"] = "PUT"
    else:
        parts["headers"]["Host"] = "evil.example:8000"
    with pytest.raises(Unauthenticated, match="signature does not match"):
        check(sigv4.IncomingRequest(**parts))


def test_wrong_secret() -> None:
    with pytest.raises(Unauthenticated, match="signature does not match"):
        check(signed(), secret="another secret")


def test_clock_skew_over_five_minutes_is_refused() -> None:
    request = signed()
    check(request, now=datetime.now(UTC) + timedelta(minutes=4, seconds=50))
    with pytest.raises(Unauthenticated, match="more than 300 s"):
        check(request, now=datetime.now(UTC) + timedelta(minutes=5, seconds=10))
    with pytest.raises(Unauthenticated, match="more than 300 s"):
        check(request, now=datetime.now(UTC) - timedelta(minutes=5, seconds=10))


def test_signed_for_another_service() -> None:
    with pytest.raises(Unauthenticated, match="service 's3'"):
        check(signed(service="s3"))


@pytest.mark.parametrize("header, complaint", [
    (None, "not signed"),
    ("Basic dXNlcjpwYXNz", "not an AWS4-HMAC-SHA256"),
    ("AWS4-HMAC-SHA256 Credential=AKIATESTKEY000000001/20261124/us-east-1/chime/x, "
     "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64, "credential scope"),
    ("AWS4-HMAC-SHA256 Credential=AKIATESTKEY000000001/20261124/us-east-1/chime/"
     "aws4_request, SignedHeaders=content-type;host, Signature=" + "0" * 64,
     "x-amz-date header must be signed"),
    ("AWS4-HMAC-SHA256 Credential=bad!/20261124/us-east-1/chime/aws4_request, "
     "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64, "access key id .* malformed"),
])
def test_malformed_authorization_headers(header: str | None, complaint: str) -> None:
    with pytest.raises(Unauthenticated, match=complaint):
        sigv4.parse_authorization(header)


def test_missing_or_malformed_date() -> None:
    request = signed()
    info = sigv4.parse_authorization(request.headers["Authorization"])
    headers = {k: v for k, v in request.headers.items() if k.lower() != "x-amz-date"}
    with pytest.raises(Unauthenticated, match="X-Amz-Date header is missing"):
        sigv4.verify(sigv4.IncomingRequest("POST", "/", "", headers, b""), info, SECRET,
                     now=datetime.now(UTC), max_skew=SKEW)
    headers["X-Amz-Date"] = "yesterday"
    with pytest.raises(Unauthenticated, match="must look like"):
        sigv4.verify(sigv4.IncomingRequest("POST", "/", "", headers, b""), info, SECRET,
                     now=datetime.now(UTC), max_skew=SKEW)
