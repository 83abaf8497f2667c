"""Shardlyn surface: the SSH certificate authority at /v1/ssh.

    GET  /v1/ssh/ca-public-key                 public: {"public_key", "fingerprint", "trusted_keys"}
    POST /v1/ssh/certificate                   {"public_key", "principals", "validity_hours", "node_id"} -> 200
                                               {"certificate", "serial_number", "valid_after", "valid_before",
                                               "principals"} (the reference's shape) and "id", "key_id",
                                               "organization_id", "fingerprint", "ca_fingerprint", "revoked_at"
    GET  /v1/ssh/certificates                  {"certificates": [...], "total"}, newest first
    GET  /v1/ssh/certificates/{id}             one certificate
    POST /v1/ssh/certificates/{id}/revoke      the certificate, revoked
    GET  /v1/ssh/ca/keys                       admin: {"keys": [...]}
    POST /v1/ssh/ca/keys                       admin: 201 a new key (it signs if none does, else it waits)
    POST /v1/ssh/ca/keys/rotate                admin: the key that signs from now on
    POST /v1/ssh/ca/keys/{id}/retire           admin (an extension): guests stop trusting a key that no longer signs

Principals are login names on the servers ("root"). A certificate opens the servers of the organization it
was signed for (`organization_id`, default the caller's), as those logins: the servers check its key id,
so no other organization's server accepts it. It is valid 8 hours unless `validity_hours` says otherwise,
24 at most (CLOUDLET_SSH_CERTIFICATE_HOURS, CLOUDLET_SSH_CERTIFICATE_MAX_HOURS). `node_id` names a
hypervisor in Shardlyn; Cloudlet signs for customers' servers only, so it must be absent or null.
Revoking reaches running servers within a minute (their revocation list is pushed by their guest agent).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field

from cloudlet.auth.caller import Caller
from cloudlet.kit.errors import Invalid
from cloudlet.kit.serial import IsoSeconds
from cloudlet.sshca import service as sshca
from cloudlet.sshca.models import CaKeyState
from cloudlet.sshca.schemas import CaKeyRead, CaPublicKeys, CertificateCreate, CertificateRead
from cloudlet.surfaces.deps import AdminCaller, AppSettings, DbSession, requires
from cloudlet.surfaces.shardlyn.organization_schemas import chosen_organization
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/v1/ssh", tags=["shardlyn"])

Reader = Annotated[Caller, requires(Ability.INSTANCES_READ)]
Writer = Annotated[Caller, requires(Ability.INSTANCES_WRITE)]


class ShardlynCertificateCreate(CertificateCreate):
    """POST /v1/ssh/certificate."""

    node_id: str | None = None
    organization_id: int | str | None = Field(default=None, description="Default: the caller's organization.")

    def organization(self, default: int) -> int:
        """The organization (project) whose servers the certificate opens."""
        if self.node_id is not None:
            raise Invalid("node_id", "Certificates open customers' servers, not hypervisor nodes: leave node_id out.")
        return chosen_organization(self.organization_id, default)


class ShardlynCertificate(BaseModel):
    """A signed certificate."""

    id: str
    certificate: str
    serial_number: str
    valid_after: IsoSeconds
    valid_before: IsoSeconds
    principals: list[str]
    key_id: str
    organization_id: str
    fingerprint: str
    ca_fingerprint: str
    revoked_at: IsoSeconds | None

    @classmethod
    def of(cls, found: CertificateRead) -> ShardlynCertificate:
        """Render a certificate."""
        return cls(id=found.uuid, certificate=found.certificate, serial_number=str(found.serial),
                   valid_after=found.valid_after, valid_before=found.valid_before, principals=found.principals,
                   key_id=found.key_id, organization_id=str(found.project_id),
                   fingerprint=found.public_key_fingerprint, ca_fingerprint=found.ca_fingerprint,
                   revoked_at=found.revoked_at)


class ShardlynCertificateList(BaseModel):
    """Certificates, newest first."""

    certificates: list[ShardlynCertificate]
    total: int


class ShardlynCaKey(BaseModel):
    """A CA key."""

    id: str
    algorithm: str
    public_key: str
    fingerprint: str
    status: CaKeyState
    created_at: IsoSeconds
    activated_at: IsoSeconds | None
    retired_at: IsoSeconds | None

    @classmethod
    def of(cls, found: CaKeyRead) -> ShardlynCaKey:
        """Render a CA key."""
        return cls(id=found.uuid, algorithm=found.algorithm, public_key=found.public_key,
                   fingerprint=found.fingerprint, status=found.state, created_at=found.created_at,
                   activated_at=found.activated_at, retired_at=found.retired_at)


class ShardlynCaKeyList(BaseModel):
    """Every CA key, oldest first."""

    keys: list[ShardlynCaKey]


@router.get("/ca-public-key", response_model=CaPublicKeys, summary="Get CA public key")
def ca_public_key(db: DbSession, settings: AppSettings) -> CaPublicKeys:
    """The key that signs certificates (for a server's TrustedUserCAKeys), and every key servers trust."""
    return sshca.public_keys(db, settings)


@router.post("/certificate", response_model=ShardlynCertificate, summary="Generate signed certificate")
def sign_certificate(body: ShardlynCertificateCreate, caller: Writer, db: DbSession,
                     settings: AppSettings) -> ShardlynCertificate:
    """Sign the caller's public key for the servers of one of their organizations."""
    project = body.organization(caller.project_id)
    return ShardlynCertificate.of(sshca.sign_certificate(db, settings, caller, project, body))


@router.get("/certificates", response_model=ShardlynCertificateList, summary="List certificates")
def list_certificates(caller: Reader, db: DbSession) -> ShardlynCertificateList:
    """The certificates of the caller's organizations, newest first."""
    found = [ShardlynCertificate.of(c) for c in sshca.list_certificates(db, caller)]
    return ShardlynCertificateList(certificates=found, total=len(found))


@router.get("/certificates/{certificate_id}", response_model=ShardlynCertificate, summary="Get certificate")
def get_certificate(certificate_id: str, caller: Reader, db: DbSession) -> ShardlynCertificate:
    """One certificate."""
    return ShardlynCertificate.of(sshca.get_certificate(db, caller, certificate_id))


@router.post("/certificates/{certificate_id}/revoke", response_model=ShardlynCertificate,
             summary="Revoke certificate")
def revoke_certificate(certificate_id: str, caller: Writer, db: DbSession) -> ShardlynCertificate:
    """Revoke a certificate; running servers refuse it within a minute, new ones at once."""
    return ShardlynCertificate.of(sshca.revoke_certificate(db, caller, certificate_id))


@router.get("/ca/keys", response_model=ShardlynCaKeyList, summary="List CA keys")
def list_ca_keys(caller: AdminCaller, db: DbSession) -> ShardlynCaKeyList:
    """Every CA key with its state."""
    return ShardlynCaKeyList(keys=[ShardlynCaKey.of(k) for k in sshca.list_keys(db)])


@router.post("/ca/keys", response_model=ShardlynCaKey, status_code=201, summary="Generate CA key")
def generate_ca_key(caller: AdminCaller, db: DbSession, settings: AppSettings) -> ShardlynCaKey:
    """A new CA key; servers learn to trust it before a rotation makes it sign."""
    return ShardlynCaKey.of(sshca.generate_key(db, settings))


@router.post("/ca/keys/rotate", response_model=ShardlynCaKey, summary="Rotate CA key")
def rotate_ca_key(caller: AdminCaller, db: DbSession, settings: AppSettings) -> ShardlynCaKey:
    """Make the key generated ahead (or a new one) sign; the previous key stays trusted until retired."""
    return ShardlynCaKey.of(sshca.rotate_key(db, settings))


@router.post("/ca/keys/{key_id}/retire", response_model=ShardlynCaKey, summary="Retire CA key")
def retire_ca_key(key_id: str, caller: AdminCaller, db: DbSession) -> ShardlynCaKey:
    """Stop trusting a key that no longer signs."""
    return ShardlynCaKey.of(sshca.retire_key(db, key_id))
