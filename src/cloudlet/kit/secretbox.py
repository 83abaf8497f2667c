"""Secrets Cloudlet must read back (TOTP seeds), sealed at rest under a key derived from its own secret.

Fernet (AES-128-CBC with HMAC-SHA256) from `cryptography`; the key comes from the installation's
secret key through HKDF with a purpose label, so each use has its own key and none is stored.
Changing CLOUDLET_SECRET_KEY (or losing the generated one) makes sealed values unreadable.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class SecretBox:
    """Seals and opens short strings for one purpose."""

    def __init__(self, master_secret: str, purpose: str) -> None:
        key = HKDF(algorithm=SHA256(), length=32, salt=None, info=f"cloudlet:{purpose}".encode()).derive(
            master_secret.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, plaintext: str) -> str:
        """The sealed form of plaintext (different every time)."""
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, sealed: str) -> str:
        """The plaintext of a sealed value; ValueError if it was altered or sealed under another key."""
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise ValueError("the sealed value was altered or sealed under another key") from None
