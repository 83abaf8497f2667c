"""The SSH certificate authority: CA keys (generated, rotated, retired by an operator), certificates signed
for a project's members, and what guests need to trust them.

A certificate is bound to its project through its key id ("cloudlet:<uuid>:project-<id>:instance-all"): a
guest's sshd asks the guest's principals command (written by its seed) which login names a certificate may
use, and that command names none unless the key id is its own project's. So a certificate for "root" opens
the servers of the project it was signed for and no other customer's. The principals are login names.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta
from functools import lru_cache
from typing import NamedTuple

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloudlet.config import Settings
from cloudlet.drivers.base import GuestSshTrust
from cloudlet.kit import clock
from cloudlet.kit.errors import Conflict, Invalid, NotFound
from cloudlet.kit.secretbox import SecretBox
from cloudlet.projects import service as projects
from cloudlet.projects.schemas import Actor
from cloudlet.sshca import repository, revocations, signing
from cloudlet.sshca.models import CaKeyState, SshCaKey, SshCertificate
from cloudlet.sshca.schemas import CaKeyRead, CaPublicKeys, CertificateCreate, CertificateRead

BACKDATE = timedelta(minutes=1)  # a guest whose clock runs a little behind still accepts a fresh certificate
KEY_ID_PREFIX = "cloudlet"


@lru_cache(maxsize=4)
def _box(master_secret: str) -> SecretBox:
    return SecretBox(master_secret, "ssh-ca")


# --- CA keys ---------------------------------------------------------------------------------------------


def _new_key(session: Session, settings: Settings, *, active: bool) -> SshCaKey:
    pair = signing.new_key_pair(f"cloudlet-ca-{clock.now():%Y%m%d}")
    row = SshCaKey(uuid=str(uuid.uuid4()), algorithm="ssh-ed25519", public_key=pair.public_key,
                   fingerprint=pair.fingerprint, sealed_private_key=_box(settings.jwt_secret).seal(pair.private_pem),
                   state=CaKeyState.ACTIVE if active else CaKeyState.TRUSTED, active_slot=1 if active else None,
                   created_at=clock.now(), activated_at=clock.now() if active else None)
    session.add(row)
    session.flush()
    return row


def signing_key(session: Session, settings: Settings) -> SshCaKey:
    """The active CA key, made at first need (two processes racing to make it keep the first one)."""
    found = repository.active_key(session)
    if found is not None:
        return found
    try:
        with session.begin_nested():
            return _new_key(session, settings, active=True)
    except IntegrityError:  # another process made it first
        found = repository.active_key(session)
        if found is None:
            raise
        return found


def public_keys(session: Session, settings: Settings) -> CaPublicKeys:
    """The key that signs, and every key guests are told to trust."""
    active = signing_key(session, settings)
    return CaPublicKeys(public_key=active.public_key, fingerprint=active.fingerprint,
                        trusted_keys=[k.public_key for k in repository.trusted_keys(session)])


def list_keys(session: Session) -> list[CaKeyRead]:
    """Every CA key, oldest first."""
    return [CaKeyRead.model_validate(k) for k in repository.keys(session)]


def generate_key(session: Session, settings: Settings) -> CaKeyRead:
    """A new CA key: it signs if none does yet, else guests learn to trust it ahead of a rotation."""
    active = repository.active_key(session) is None
    return CaKeyRead.model_validate(_new_key(session, settings, active=active))


def rotate_key(session: Session, settings: Settings) -> CaKeyRead:
    """Make the newest key generated ahead (or a new one) sign; the previous one stays trusted until retired."""
    current = repository.active_key(session)
    waiting = [k for k in repository.keys(session) if k.state is CaKeyState.TRUSTED and k.activated_at is None]
    if current is not None:
        current.state, current.active_slot = CaKeyState.TRUSTED, None
        session.flush()
    if waiting:
        chosen = waiting[-1]
        chosen.state, chosen.active_slot, chosen.activated_at = CaKeyState.ACTIVE, 1, clock.now()
        session.flush()
    else:
        chosen = _new_key(session, settings, active=True)
    return CaKeyRead.model_validate(chosen)


def retire_key(session: Session, key_uuid: str) -> CaKeyRead:
    """Stop trusting a key that no longer signs: certificates it signed stop working on every guest."""
    found = repository.key_by_uuid(session, key_uuid)
    if found is None:
        raise NotFound("CA key", key_uuid)
    if found.state is CaKeyState.ACTIVE:
        raise Conflict("The active CA key signs new certificates; rotate to another key before retiring it.",
                       code="CA_KEY_ACTIVE")
    if found.state is not CaKeyState.RETIRED:
        found.state, found.retired_at = CaKeyState.RETIRED, clock.now()
        session.flush()
    return CaKeyRead.model_validate(found)


# --- certificates ----------------------------------------------------------------------------------------


def key_id(certificate_uuid: str, project_id: int) -> str:
    """The key id a certificate carries: which certificate, and the project whose servers it opens."""
    return f"{KEY_ID_PREFIX}:{certificate_uuid}:project-{project_id}:instance-all"


def _read(row: SshCertificate, ca: SshCaKey) -> CertificateRead:
    return CertificateRead(uuid=row.uuid, project_id=row.project_id, certificate=row.certificate, serial=row.serial,
                           key_id=row.key_id, principals=list(row.principals),
                           public_key_fingerprint=row.public_key_fingerprint, ca_fingerprint=ca.fingerprint,
                           valid_after=row.valid_after, valid_before=row.valid_before, created_at=row.created_at,
                           revoked_at=row.revoked_at)


def _serial(session: Session) -> int:
    while True:  # 63 random bits: a collision is all but impossible, and checked
        serial = secrets.randbits(63)
        if serial and not repository.serial_taken(session, serial):
            return serial


def sign_certificate(session: Session, settings: Settings, actor: Actor, project_id: int,
                     data: CertificateCreate) -> CertificateRead:
    """Sign the caller's public key for the servers of one of their projects."""
    projects.require_membership(session, actor.user_id, project_id, fence=actor.project_scope)
    hours = data.validity_hours if data.validity_hours is not None else settings.ssh_certificate_hours
    if not 1 <= hours <= settings.ssh_certificate_max_hours:
        raise Invalid("validity_hours", f"validity_hours must be between 1 and {settings.ssh_certificate_max_hours}.",
                      code="INVALID_VALIDITY")
    key = signing.user_key(data.public_key)
    ca = signing_key(session, settings)
    now = clock.now().replace(microsecond=0)
    ident = str(uuid.uuid4())
    serial = _serial(session)
    valid_after, valid_before = now - BACKDATE, now + timedelta(hours=hours)
    text = signing.sign(_box(settings.jwt_secret).open(ca.sealed_private_key), key, serial=serial,
                        key_id=key_id(ident, project_id), principals=data.principals,
                        valid_after=valid_after, valid_before=valid_before)
    row = SshCertificate(uuid=ident, project_id=project_id, created_by=actor.user_id, ca_key_id=ca.id, serial=serial,
                         key_id=key_id(ident, project_id), principals=data.principals,
                         public_key_fingerprint=key.fingerprint, certificate=text, valid_after=valid_after,
                         valid_before=valid_before, created_at=now)
    session.add(row)
    session.flush()
    return _read(row, ca)


def list_certificates(session: Session, actor: Actor) -> list[CertificateRead]:
    """The certificates of the caller's projects, newest first."""
    return [_read(row, ca) for row, ca in repository.certificates(session, projects.in_reach(session, actor))]


def _certificate(session: Session, actor: Actor, ident: str, *, lock: bool = False) -> tuple[SshCertificate, SshCaKey]:
    found = repository.certificate(session, ident, lock=lock)
    if found is None or found[0].project_id not in projects.in_reach(session, actor):
        raise NotFound("certificate", ident)
    return found


def get_certificate(session: Session, actor: Actor, ident: str) -> CertificateRead:
    """One certificate of the caller's projects."""
    return _read(*_certificate(session, actor, ident))


def revoke_certificate(session: Session, actor: Actor, ident: str) -> CertificateRead:
    """Revoke a certificate: guests refuse it once their revocation list has it (new guests at once, running
    ones when the next push reaches them, within a minute). Revoking twice changes nothing."""
    row, ca = _certificate(session, actor, ident, lock=True)
    if row.revoked_at is None:
        row.revoked_at = clock.now()
        session.flush()
    return _read(row, ca)


# --- what guests need ------------------------------------------------------------------------------------


class TrustFiles(NamedTuple):
    """The files every guest shares: the CA keys it trusts and the revocation list; digest names the pair."""

    ca_keys: str
    revoked_keys: bytes
    digest: str


@lru_cache(maxsize=8)
def _revocation_list(certificates: tuple[str, ...]) -> bytes:
    return revocations.revocation_list(certificates)


def trust_files(session: Session) -> TrustFiles:
    """The CA keys guests trust (none before the first is made) and the revocation list of the certificates
    revoked and still unexpired. Read-only: a key made later reaches running guests with the next push."""
    ca_keys = "".join(f"{k.public_key}\n" for k in repository.trusted_keys(session))
    revoked = tuple(c.certificate for c in repository.revoked_in_force(session, clock.now()))
    digest = hashlib.sha256("\n".join((ca_keys, *revoked)).encode()).hexdigest()
    return TrustFiles(ca_keys, _revocation_list(revoked), digest)


def guest_trust(session: Session, project_id: int) -> GuestSshTrust:
    """What a new guest of the project needs to accept the project's certificates and refuse revoked ones."""
    files = trust_files(session)
    return GuestSshTrust(ca_keys=files.ca_keys, revoked_keys=files.revoked_keys,
                         key_ids=(f"{KEY_ID_PREFIX}:*:project-{project_id}:instance-all",))
