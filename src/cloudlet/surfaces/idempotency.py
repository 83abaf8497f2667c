"""The Idempotency-Key header on billable POSTs: a retried request gets the first answer again.

How it works, inside the request's own write transaction:
1. The key is looked up for the calling user. The same key with the same request (method, path
   and body) replays the stored status and body with `Idempotent-Replayed: true`; the same key
   with a different request is refused with 422.
2. Otherwise the key is claimed by inserting its row before the endpoint runs. A concurrent
   request with the same key waits on the unique index (PostgreSQL) or on the write lock
   (SQLite) until the first commits, then finds the stored answer and replays it.
3. The endpoint's answer is stored in the claimed row and commits with the endpoint's effects,
   so an answer is remembered exactly when its effects happened. A request that fails rolls
   back the claim too: an error is never replayed, and retrying it runs it again.

Keys are kept for `idempotency_key_hours` (24 by default); an older key counts as unused.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Integer, String, Text, UniqueConstraint, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from cloudlet.auth.caller import Caller
from cloudlet.kit import clock
from cloudlet.kit.db import Base, UTCDateTime
from cloudlet.kit.errors import Conflict, Invalid
from cloudlet.kit.secretbox import SecretBox
from cloudlet.surfaces.deps import AppSettings, DbSession, current_caller

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255


class IdempotencyRecord(Base):
    """A key a user sent, the request it came with, and the answer that request got."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer)  # no foreign key: a record outlives nothing it guards
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)  # None while the first request runs
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, index=True)


# --- SQL ----------------------------------------------------------------------------------------


def _find(session: Session, user_id: int, key: str) -> IdempotencyRecord | None:
    return session.scalar(select(IdempotencyRecord).where(IdempotencyRecord.user_id == user_id,
                                                          IdempotencyRecord.key == key)
                          .execution_options(populate_existing=True))


def _claim(session: Session, record: IdempotencyRecord) -> bool:
    try:
        with session.begin_nested():
            session.add(record)
            session.flush()
        return True
    except IntegrityError:
        return False


def purge(session: Session, before: datetime) -> int:
    """Forget keys created before a moment; returns how many."""
    result = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < before))
    return int(getattr(result, "rowcount", 0) or 0)


# --- the guard --------------------------------------------------------------------------------


def request_hash(method: str, path: str, body: BaseModel | None) -> str:
    """A fingerprint of what was asked: method, path and the body's canonical JSON."""
    payload = body.model_dump(mode="json") if body is not None else None
    text = json.dumps([method.upper(), path, payload], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class Idempotency:
    """What a billable endpoint runs its work through; without the header the work simply runs."""

    def __init__(self, session: Session, user_id: int, key: str | None, method: str, path: str,
                 keep: timedelta, box: SecretBox) -> None:
        self.session = session
        self.box = box  # answers are kept sealed: some carry a secret shown once (a new root password)
        self.user_id = user_id
        self.key = key
        self.method = method
        self.path = path
        self.keep = keep
        self.claim: str | None = None  # once claimed: a name unique to this request, for keys below it

    @property
    def operation_key(self) -> str | None:
        """A key for the work's own idempotency (e.g. a ledger key): unique per claimed request, None unkeyed."""
        return self.claim

    def run(self, body: BaseModel | None, work: Callable[[], BaseModel], *, status_code: int = 200) -> JSONResponse:
        """The answer of work() - or, for a key seen with the same request, the answer stored the first time."""
        if self.key is None:
            return JSONResponse(work().model_dump(mode="json"), status_code=status_code)
        fingerprint = request_hash(self.method, self.path, body)
        for _ in range(3):
            found = _find(self.session, self.user_id, self.key)
            if found is not None and found.created_at < clock.now() - self.keep:
                self.session.delete(found)
                self.session.flush()
                found = None
            if found is not None:
                return self._replay(found, fingerprint)
            record = IdempotencyRecord(user_id=self.user_id, key=self.key, request_hash=fingerprint,
                                       created_at=clock.now())
            if _claim(self.session, record):
                self.claim = uuid.uuid4().hex  # row ids can be reused once an expired key is deleted
                content = work().model_dump(mode="json")
                record.status_code = status_code
                record.response_body = self.box.seal(json.dumps(content))
                self.session.flush()
                return JSONResponse(content, status_code=status_code)
        raise Conflict("A request with this Idempotency-Key is being processed; retry shortly.",
                       code="IDEMPOTENCY_KEY_IN_USE")

    def _replay(self, found: IdempotencyRecord, fingerprint: str) -> JSONResponse:
        if found.request_hash != fingerprint:
            raise Invalid(HEADER, "This Idempotency-Key was already used with a different request; "
                                  "use a new key for a new request.", code="IDEMPOTENCY_KEY_REUSED")
        if found.status_code is None or found.response_body is None:
            raise Conflict("A request with this Idempotency-Key is being processed; retry shortly.",
                           code="IDEMPOTENCY_KEY_IN_USE")
        content: Any = json.loads(self.box.open(found.response_body))
        return JSONResponse(content, status_code=found.status_code, headers={REPLAYED: "true"})


@lru_cache(maxsize=4)
def _box(master_secret: str) -> SecretBox:
    return SecretBox(master_secret, "idempotency")


def _idempotency(request: Request, db: DbSession, settings: AppSettings,
                 caller: Annotated[Caller, Depends(current_caller)],
                 key: Annotated[str | None, Header(alias=HEADER, description=(
                     "Optional. Retrying with the same key and body returns the first answer; "
                     "keys are kept for at least 24 hours and are scoped to the user."))] = None) -> Idempotency:
    if key is not None:
        key = key.strip()
        if not key or len(key) > MAX_KEY_LENGTH:
            raise Invalid(HEADER, f"An Idempotency-Key is 1 to {MAX_KEY_LENGTH} characters.")
    return Idempotency(db, caller.user_id, key, request.method, request.url.path,
                       timedelta(hours=settings.idempotency_key_hours), _box(settings.jwt_secret))


IdempotencyGuard = Annotated[Idempotency, Depends(_idempotency)]
