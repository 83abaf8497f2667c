"""A webhook token's digest verifies GitHub's signature: HMAC-SHA256 hashes a key longer than its block first."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cloudlet.githooks.service import HMAC_BLOCK, SECRET_BYTES, SECRET_PREFIX, github_signature
from cloudlet.kit.ids import digest


def test_the_digest_of_a_secret_signs_as_the_secret_does() -> None:
    for _ in range(20):
        secret = SECRET_PREFIX + secrets.token_hex(SECRET_BYTES)
        assert len(secret.encode()) > HMAC_BLOCK
        body = secrets.token_bytes(secrets.randbelow(4096))
        as_github = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert github_signature(digest(secret), body) == as_github


def test_a_short_key_would_not_sign_alike() -> None:
    """Why the secrets are long: a key within the block is used as it is, and its digest is another key."""
    short = "s" * HMAC_BLOCK
    body = b"{}"
    as_github = "sha256=" + hmac.new(short.encode(), body, hashlib.sha256).hexdigest()
    assert github_signature(digest(short), body) != as_github
