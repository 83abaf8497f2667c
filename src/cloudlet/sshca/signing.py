"""The CA's cryptography: key pairs and user certificates, built by `cryptography`'s SSH certificate builder.

No SSH wire format is written here: keys are serialised and certificates built and parsed by `cryptography`,
and the revocation list by `ssh-keygen` (revocations.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    SSHCertificateBuilder,
    SSHCertificateType,
    load_ssh_public_key,
)

from cloudlet.kit import sshkeys
from cloudlet.kit.errors import Invalid

RSA_MIN_BITS = 2048
# what a user certificate permits besides the shell, as `ssh-keygen -s` grants it by default, X11 left out
EXTENSIONS = (b"permit-agent-forwarding", b"permit-port-forwarding", b"permit-pty", b"permit-user-rc")


class KeyPair(NamedTuple):
    """A new CA key: its public line, fingerprint and private key in OpenSSH's PEM form."""

    public_key: str
    fingerprint: str
    private_pem: str


class UserKey(NamedTuple):
    """A checked user public key to sign."""

    line: str
    fingerprint: str


def new_key_pair(comment: str) -> KeyPair:
    """A fresh Ed25519 CA key."""
    private = ed25519.Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH).decode()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    return KeyPair(f"{public} {comment}", sshkeys.parse(public, "public_key").fingerprint, pem)


def user_key(text: str) -> UserKey:
    """A user's public key checked for signing: OpenSSH format, a key (not a certificate), RSA of 2048 bits up."""
    parsed = sshkeys.parse(text, "public_key")
    key = load_ssh_public_key(" ".join(parsed.line.split()[:2]).encode())
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < RSA_MIN_BITS:
        raise Invalid("public_key", f"An RSA key must have at least {RSA_MIN_BITS} bits; this one has "
                                    f"{key.key_size}.", code="INVALID_SSH_KEY")
    return UserKey(parsed.line, parsed.fingerprint)


def sign(private_pem: str, key: UserKey, *, serial: int, key_id: str, principals: list[str],
         valid_after: datetime, valid_before: datetime) -> str:
    """The OpenSSH user certificate of key, signed by the CA key, as one line."""
    ca = serialization.load_ssh_private_key(private_pem.encode(), password=None)
    if not isinstance(ca, ed25519.Ed25519PrivateKey):
        raise ValueError("CA keys are Ed25519")
    subject = load_ssh_public_key(" ".join(key.line.split()[:2]).encode())
    builder = (SSHCertificateBuilder()
               .public_key(subject)  # type: ignore[arg-type]  # checked to be one of the signable kinds
               .serial(serial)
               .type(SSHCertificateType.USER)
               .key_id(key_id.encode())
               .valid_principals([p.encode() for p in principals])
               .valid_after(int(valid_after.timestamp()))
               .valid_before(int(valid_before.timestamp())))
    for extension in EXTENSIONS:
        builder = builder.add_extension(extension, b"")
    return builder.sign(ca).public_bytes().decode()

