"""The X-Webhook-Signature header: HMAC-SHA256 of the exact body bytes, as CyberPanel documents it."""

from __future__ import annotations

import hashlib
import hmac

from cloudlet.webhooks.service import sign, signature_matches


def test_the_signature_is_the_hex_hmac_sha256_of_the_body_with_a_sha256_prefix() -> None:
    # RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?"
    expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    assert sign("Jefe", b"what do ya want for nothing?") == f"sha256={expected}"


def test_a_receiver_verifying_with_the_standard_library_accepts_it() -> None:
    body = b'{"event":"vps.deployment.completed","data":{"vps_id":46}}'
    header = sign("s3cret", body)
    computed = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert header.removeprefix("sha256=") == computed
    assert signature_matches("s3cret", body, header)


def test_any_change_to_body_or_secret_breaks_the_signature() -> None:
    body = b'{"a":1}'
    header = sign("s3cret", body)
    assert not signature_matches("s3cret", b'{"a": 1}', header)  # same JSON, other bytes
    assert not signature_matches("other", body, header)
    assert not signature_matches("s3cret", body, None)
    assert not signature_matches("s3cret", body, header.removeprefix("sha256="))


def test_a_unicode_secret_is_used_as_its_utf8_bytes() -> None:
    body = "{\"name\":\"sérveur\"}".encode()
    assert sign("clé", body) == "sha256=" + hmac.new("clé".encode(), body, hashlib.sha256).hexdigest()
