"""OpenSSH public keys: checked with `cryptography` and fingerprinted as `ssh-keygen -l` prints them."""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import NamedTuple

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

from cloudlet.kit.errors import Invalid

KEY_TYPES = frozenset({"ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
                       "ecdsa-sha2-nistp521"})
MAX_COMMENT = 200


class PublicKey(NamedTuple):
    """A checked key: the one line to put in authorized_keys, and its SHA256 fingerprint."""

    line: str
    fingerprint: str


def parse(text: str, field: str) -> PublicKey:
    """Check one OpenSSH public key line ("type base64 [comment]"); Invalid (INVALID_SSH_KEY) otherwise."""
    stripped = text.strip()
    parts = stripped.split(None, 2)
    if "\n" in stripped or "\r" in stripped or len(parts) < 2 or parts[0] not in KEY_TYPES:
        raise Invalid(field, "An SSH key is one line in OpenSSH format: ssh-ed25519, ssh-rsa or ecdsa-sha2-*, "
                             "then the key, then an optional comment.", code="INVALID_SSH_KEY")
    kind, blob = parts[0], parts[1]
    comment = parts[2].strip() if len(parts) > 2 else ""
    if len(comment) > MAX_COMMENT or "'" in comment or not comment.isprintable():
        raise Invalid(field, f"An SSH key's comment is at most {MAX_COMMENT} printable characters without quotes.",
                      code="INVALID_SSH_KEY")
    try:
        raw = base64.b64decode(blob, validate=True)
        load_ssh_public_key(f"{kind} {blob}".encode())
    except (binascii.Error, ValueError, UnsupportedAlgorithm):
        raise Invalid(field, f"The {kind} key is not a valid public key.", code="INVALID_SSH_KEY") from None
    digest = base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")
    line = f"{kind} {blob}" + (f" {comment}" if comment else "")
    return PublicKey(line=line, fingerprint=f"SHA256:{digest}")
