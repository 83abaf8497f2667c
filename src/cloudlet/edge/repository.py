"""SQL of the edge: apps, their hostnames, versions and blocked requests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloudlet.edge.models import CertificateStatus, WafApp, WafBlock, WafChallenge, WafHostname, WafVersion

BLOCKS_KEPT = 1000  # per app: the latest blocked requests


def app(session: Session, app_id: int, *, lock: bool = False) -> WafApp | None:
    """An app by id (its row locked for the transaction when asked)."""
    query = select(WafApp).where(WafApp.id == app_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.scalars(query).first()


def apps(session: Session, project_ids: Sequence[int] | None = None) -> list[WafApp]:
    """Apps oldest first: of these projects, or all."""
    query = select(WafApp).order_by(WafApp.id)
    if project_ids is not None:
        query = query.where(WafApp.project_id.in_(project_ids))
    return list(session.scalars(query))


def count_apps(session: Session, project_id: int) -> int:
    """How many apps a project has."""
    return session.scalar(select(func.count()).select_from(WafApp).where(WafApp.project_id == project_id)) or 0


def hostnames(session: Session, app_ids: Sequence[int]) -> dict[int, list[WafHostname]]:
    """The hostnames of these apps, primary first then oldest, by app."""
    found: dict[int, list[WafHostname]] = {app_id: [] for app_id in app_ids}
    if app_ids:
        query = (select(WafHostname).where(WafHostname.app_id.in_(app_ids))
                 .order_by(WafHostname.is_primary.desc(), WafHostname.id))
        for row in session.scalars(query):
            found[row.app_id].append(row)
    return found


def hostname_taken(session: Session, hostname: str) -> WafHostname | None:
    """The hostname's row, whichever app has it."""
    return session.scalars(select(WafHostname).where(WafHostname.hostname == hostname)).first()


def hostname(session: Session, hostname_id: int, *, lock: bool = False) -> WafHostname | None:
    """A hostname by id (its row locked for the transaction when asked)."""
    query = select(WafHostname).where(WafHostname.id == hostname_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.scalars(query).first()


def replace_challenges(session: Session, hostname_id: int, keys: dict[str, str]) -> None:
    """Make these the hostname's pending key authorizations (none: withdraw them)."""
    session.execute(delete(WafChallenge).where(WafChallenge.hostname_id == hostname_id))
    session.add_all([WafChallenge(token=token, hostname_id=hostname_id, key_authorization=key)
                     for token, key in keys.items()])
    session.flush()


def challenge(session: Session, token: str) -> WafChallenge | None:
    """A pending key authorization by its token."""
    return session.get(WafChallenge, token)


def expiring(session: Session, before: datetime, limit: int = 100) -> list[WafHostname]:
    """Hostnames whose certificate expires before a time, soonest first."""
    return list(session.scalars(select(WafHostname).where(WafHostname.cert_status == CertificateStatus.ISSUED,
                                                          WafHostname.cert_not_after < before)
                                .order_by(WafHostname.cert_not_after).limit(limit)))


def insert_hostname(session: Session, row: WafHostname) -> bool:
    """Insert a hostname; False (and nothing inserted) when another app took the name meanwhile."""
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return False
    return True


def add(session: Session, row: WafApp | WafHostname | WafVersion | WafBlock) -> None:
    """Insert a row and give it its id."""
    session.add(row)
    session.flush()


def remove(session: Session, row: WafApp | WafHostname) -> None:
    """Delete a row (an app's hostnames, versions and blocks go with it)."""
    session.delete(row)
    session.flush()


def versions(session: Session, app_id: int) -> list[WafVersion]:
    """An app's versions, newest first."""
    return list(session.scalars(select(WafVersion).where(WafVersion.app_id == app_id)
                                .order_by(WafVersion.number.desc())))


def version(session: Session, app_id: int, number: int) -> WafVersion | None:
    """One version of an app."""
    return session.scalars(select(WafVersion).where(WafVersion.app_id == app_id,
                                                    WafVersion.number == number)).first()


def blocks(session: Session, app_id: int, limit: int) -> list[WafBlock]:
    """An app's latest blocked requests, newest first."""
    return list(session.scalars(select(WafBlock).where(WafBlock.app_id == app_id)
                                .order_by(WafBlock.at.desc(), WafBlock.id.desc()).limit(limit)))


def trim_blocks(session: Session, app_id: int, keep: int = BLOCKS_KEPT) -> None:
    """Forget an app's blocked requests past the latest `keep`."""
    oldest_kept = session.scalar(select(WafBlock.id).where(WafBlock.app_id == app_id)
                                 .order_by(WafBlock.id.desc()).offset(keep - 1).limit(1))
    if oldest_kept is not None:
        session.execute(delete(WafBlock).where(WafBlock.app_id == app_id, WafBlock.id < oldest_kept))
