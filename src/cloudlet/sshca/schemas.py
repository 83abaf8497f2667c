"""What the SSH CA takes and gives."""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cloudlet.sshca.models import CaKeyState

# a Unix login name as Debian's adduser accepts it (NAME_REGEX), at most 32 characters
PRINCIPAL = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
MAX_PRINCIPALS = 16


class CertificateCreate(BaseModel):
    """A public key to sign, the login names it may use, and for how long."""

    public_key: str = Field(max_length=16_384)
    principals: list[str] = Field(default_factory=lambda: ["root"], min_length=1, max_length=MAX_PRINCIPALS)
    validity_hours: int | None = None  # None: the installation's default (8 h unless set)

    @field_validator("principals")
    @classmethod
    def _login_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not PRINCIPAL.match(name):
                raise ValueError(f"{name!r} is not a login name: lowercase letters, digits, '_' and '-', "
                                 "starting with a letter or '_', at most 32 characters")
        if len(set(names)) != len(names):
            raise ValueError("each principal is named once")
        return names


class CertificateRead(BaseModel):
    """A signed certificate and what it allows."""

    model_config = ConfigDict(from_attributes=True)

    uuid: str
    project_id: int
    certificate: str
    serial: int
    key_id: str
    principals: list[str]
    public_key_fingerprint: str
    ca_fingerprint: str
    valid_after: datetime
    valid_before: datetime
    created_at: datetime
    revoked_at: datetime | None


class CaKeyRead(BaseModel):
    """A CA key as an operator sees it (never its private half)."""

    model_config = ConfigDict(from_attributes=True)

    uuid: str
    algorithm: str
    public_key: str
    fingerprint: str
    state: CaKeyState
    created_at: datetime
    activated_at: datetime | None
    retired_at: datetime | None


class CaPublicKeys(BaseModel):
    """The key that signs now, and every key guests trust (it among them)."""

    public_key: str
    fingerprint: str
    trusted_keys: list[str]
