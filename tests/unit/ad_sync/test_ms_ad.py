"""The AD quirks module: pure functions, no directory needed."""

from __future__ import annotations

import uuid

import pytest

from ad_sync.vendor import ms_ad
from bridge.domain.ad_connection import validate_connection_request
from bridge.errors import ValidationError

GUID = "01234567-89ab-cdef-0123-456789abcdef"


def test_object_guid_is_little_endian_in_its_first_three_fields() -> None:
    raw = uuid.UUID(GUID).bytes_le
    assert raw[:4] == bytes.fromhex("67452301")
    assert ms_ad.guid_from_bytes(raw) == GUID
    assert ms_ad.guid_filter(GUID) == "(objectGUID=" + "".join(f"\\{b:02x}" for b in raw) + ")"
    assert ms_ad.guid_base("{" + GUID.upper() + "}") == f"<GUID={GUID}>"


@pytest.mark.parametrize(("uac", "disabled"), [(512, False), (514, True), ("66050", True),
                                                ("66048", False), (None, False), ("x", False)])
def test_disabled_is_bit_2(uac: object, disabled: bool) -> None:
    assert ms_ad.is_disabled(uac) is disabled


def test_user_from_entry_reads_mail_and_smtp_proxies_only() -> None:
    entry = {"dn": "CN=s,OU=Staff,DC=example,DC=com",
             "raw_attributes": {"objectGUID": [uuid.UUID(GUID).bytes_le]},
             "attributes": {"mail": ["Shirley@Example.com"], "displayName": ["Shirley"],
                            "proxyAddresses": ["SMTP:shirley@example.com",
                                               "smtp:S@Example2.com", "X500:/o=x",
                                               "sip:shirley@example.com", "smtp:not-an-email"],
                            "userAccountControl": [514], "uSNChanged": [42]}}
    user = ms_ad.user_from_entry(entry)
    assert user is not None
    assert (user.guid, user.mail, user.aliases) == (GUID, "shirley@example.com",
                                                    ("s@example2.com",))
    assert (user.enabled, user.usn_changed, user.display_name) == (False, 42, "Shirley")
    # No mail: the SMTP: proxy is the primary. No objectGUID: not a user we can key.
    entry["attributes"]["mail"] = []
    assert ms_ad.user_from_entry(entry).mail == "shirley@example.com"  # type: ignore[union-attr]
    assert ms_ad.user_from_entry({"raw_attributes": {}, "attributes": {}}) is None


def test_filters_escape_values_and_use_the_in_chain_rule() -> None:
    flt = ms_ad.in_chain_members_filter("CN=Pro (all)*,DC=x", "(objectClass=user)")
    assert flt == ("(&(objectClass=user)(memberOf:1.2.840.113556.1.4.1941:="
                   r"CN=Pro \28all\29\2a,DC=x))")
    assert ms_ad.changed_since_filter("(objectClass=user)", 41) == \
        "(&(uSNChanged>=42)(objectClass=user))"
    assert "(isDeleted=TRUE)" in ms_ad.deleted_since_filter(7)


def test_ranged_attribute_slices() -> None:
    values, nxt = ms_ad.ranged_attribute({"member;range=0-1499": ["a"] * 1500}, "member")
    assert len(values) == 1500 and nxt == 1500
    values, nxt = ms_ad.ranged_attribute({"member;range=1500-*": ["b"]}, "member")
    assert values == ["b"] and nxt is None
    assert ms_ad.ranged_attribute({"member": ["c"]}, "member") == (["c"], None)
    # ldap3 (auto_range) answers a ranged request with the values under the plain name and
    # an empty placeholder under the name asked for.
    assert ms_ad.ranged_attribute({"member": ["d"], "member;range=1-*": []}, "member") == \
        (["d"], None)


@pytest.mark.parametrize(("message", "words"), [
    ("80090308: LdapErr: DSID-0C09042A, comment: AcceptSecurityContext error, data 52e, v3839",
     "invalid credentials (the password is wrong)"),
    ("... data 533, v893", "invalid credentials (the account is disabled)"),
    ("... data 775, v893", "invalid credentials (the account is locked out)"),
    ("no subcode", "invalid credentials"),
])
def test_bind_errors_in_words(message: str, words: str) -> None:
    result = {"description": "invalidCredentials", "message": message}
    assert ms_ad.bind_error_in_words(result) == words


def _body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {"LdapUrl": "ldaps://dc.example.com:636", "BaseDn": "DC=x",
                               "BindDn": "CN=svc,DC=x", "BindPassword": "secret"}
    body.update(overrides)
    return body


@pytest.mark.parametrize(("overrides", "field"), [
    ({"LdapUrl": "http://dc"}, "LdapUrl"),
    ({"LdapUrl": "ldap://dc:389"}, "LdapUrl"),  # plain LDAP without StartTLS
    ({"LdapUrl": "ldaps://dc", "StartTls": True}, "StartTls"),
    ({"BindPassword": ""}, "BindPassword"),
    ({"BaseDn": " "}, "BaseDn"),
    ({"CaCertificatePem": "not a pem"}, "CaCertificatePem"),
    ({"UserFilter": "objectClass=user"}, "UserFilter"),
])
def test_connection_request_validation(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_connection_request(_body(**overrides), allow_insecure=False)
    assert caught.value.field == field
    assert "secret" not in caught.value.message


def test_plain_ldap_allowed_only_when_configured_or_with_starttls() -> None:
    assert validate_connection_request(_body(LdapUrl="ldap://dc:389"),
                                       allow_insecure=True)["start_tls"] is False
    assert validate_connection_request(_body(LdapUrl="ldap://dc", StartTls=True),
                                       allow_insecure=False)["start_tls"] is True


def test_rid_from_sid_is_the_last_sub_authority() -> None:
    import struct

    from ad_sync.vendor.ms_ad import rid_from_sid

    subs = (21, 1004336348, 1177238915, 682003330, 512)
    raw = bytes([1, len(subs)]) + (5).to_bytes(6, "big") + struct.pack("<5I", *subs)
    assert rid_from_sid(raw) == 512
    assert rid_from_sid(b"\x01\x00") is None
    assert rid_from_sid("S-1-5-21-1-2-3-512") is None  # text is not the binary form


def test_primary_group_id_is_read_from_the_entry() -> None:
    from ad_sync.vendor.ms_ad import user_from_entry

    entry = {"dn": "CN=a,DC=x", "raw_attributes": {"objectGUID": [bytes(range(16))]},
             "attributes": {"mail": ["a@x.com"], "primaryGroupID": [513]}}
    user = user_from_entry(entry)
    assert user is not None and user.primary_group_id == 513
    entry["attributes"] = {"mail": ["a@x.com"]}
    user = user_from_entry(entry)
    assert user is not None and user.primary_group_id is None


@pytest.mark.parametrize(("base", "expected"), [
    # An AND base filter joins the uSNChanged AND (Samba then narrows by uSNChanged alone).
    (ms_ad.DEFAULT_USER_FILTER,
     "(&(uSNChanged>=8)(objectCategory=person)(objectClass=user)(!(objectClass=computer)))"),
    ("(&(a=1)(|(b=2)(c=3)))", "(&(uSNChanged>=8)(a=1)(|(b=2)(c=3)))"),
    ("(&(cn=x\\29y)(b=2))", "(&(uSNChanged>=8)(cn=x\\29y)(b=2))"),
    # Anything else is kept whole.
    ("(|(a=1)(b=2))", "(&(uSNChanged>=8)(|(a=1)(b=2)))"),
    ("(&(a=1))(b=2)", "(&(uSNChanged>=8)(&(a=1))(b=2))"),
    ("(&)", "(&(uSNChanged>=8)(&))"),
])
def test_changed_since_flattens_an_and_base_filter(base: str, expected: str) -> None:
    assert ms_ad.changed_since_filter(base, 7) == expected


def test_user_from_raw_reads_the_same_facts_from_raw_values() -> None:
    raw = {"objectGUID": [uuid.UUID(GUID).bytes_le], "mail": [b"Shirley@Example.com"],
           "displayName": ["Zo\u00eb".encode()],
           "proxyAddresses": [b"SMTP:shirley@example.com", b"smtp:S@Example2.com",
                              b"X500:/o=x", b"smtp:\xff@bad.example.com"],
           "userAccountControl": [b"514"], "uSNChanged": [b"42"],
           "memberOf": [b"CN=G,DC=x"], "primaryGroupID": [b"513"]}
    user = ms_ad.user_from_raw("CN=s,DC=x", raw)
    assert user == ms_ad.DirectoryUser(
        guid=GUID, dn="CN=s,DC=x", mail="shirley@example.com", aliases=("s@example2.com",),
        display_name="Zo\u00eb", enabled=False, usn_changed=42, member_of=("CN=G,DC=x",),
        primary_group_id=513)
    # Not UTF-8: absent (the SMTP: proxy is then the primary); no objectGUID: no user.
    raw["mail"] = [b"\xff"]
    assert ms_ad.user_from_raw("CN=s,DC=x", raw).mail == "shirley@example.com"  # type: ignore[union-attr]
    assert ms_ad.user_from_raw("CN=s,DC=x", {"mail": [b"a@x.com"]}) is None


def test_user_from_raw_takes_attribute_names_in_any_case() -> None:
    # Attribute descriptions are case-insensitive (RFC 4512 §2.5): the same entry answered
    # with other spellings than asked gives the same user.
    raw = {"objectGUID": [uuid.UUID(GUID).bytes_le], "mail": [b"a@example.com"],
           "displayName": [b"A"], "proxyAddresses": [b"smtp:b@example.com"],
           "userAccountControl": [b"512"], "uSNChanged": [b"7"],
           "memberOf": [b"CN=G,DC=x"], "primaryGroupID": [b"513"]}
    asked = ms_ad.user_from_raw("CN=a,DC=x", raw)
    assert asked is not None and asked.aliases == ("b@example.com",)
    for spelling in (str.upper, str.lower):
        other = {spelling(name): values for name, values in raw.items()}
        assert ms_ad.user_from_raw("CN=a,DC=x", other) == asked
