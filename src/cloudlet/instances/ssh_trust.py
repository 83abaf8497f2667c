"""Running guests keep trusting the SSH CA's current keys and refusing its revoked certificates.

A new guest gets the CA's trust files through its seed. After that, a scheduled round (every 15 s unless
CLOUDLET_SSH_TRUST_PUSH_SCHEDULE says otherwise) gives the
current pair, through the guest agent, to each running server whose image trusts the CA and whose guest has
not got it yet: a revocation or a new CA key reaches every running guest within a minute, and a guest that
was stopped or not answering gets it once it runs and answers again. Each guest is asked outside any
transaction, and its digest recorded only once its agent wrote both files.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import structlog
from dbos import DBOS
from pydantic import BaseModel

from cloudlet import worker
from cloudlet.config import Settings
from cloudlet.drivers.base import DriverError
from cloudlet.drivers.seed import CA_KEYS_PATH, REVOKED_KEYS_PATH
from cloudlet.images.models import ImageCapability
from cloudlet.instances import actions, repository
from cloudlet.kit.db import Database
from cloudlet.nodes import service as nodes
from cloudlet.sshca import service as sshca

log = structlog.get_logger(__name__)

SCHEDULE_NAME = "cloudlet-ssh-trust"
TRUSTING = frozenset({ImageCapability.SSH, ImageCapability.CLOUD_INIT, ImageCapability.GUEST_AGENT})


class TrustReport(BaseModel):
    """What one round did: guests given the current files, and those that could not take them (with why)."""

    digest: str
    pushed: list[str] = []
    failed: dict[str, str] = {}


class _Due(NamedTuple):
    instance_id: int
    guest_name: str
    node_uri: str


def push_all(db: Database, drivers: nodes.Drivers) -> TrustReport:
    """Give the SSH CA's current trust files to every running guest that trusts the CA and lacks them."""
    with db.session(write=False) as session:
        files = sshca.trust_files(session)
        uris = {target.id: target.uri for target in nodes.node_targets(session)}
        due, skipped = [], []
        for row in repository.behind_on_ssh_trust(session, files.digest):
            if actions.image_capabilities(session, row) >= TRUSTING and row.node_id in uris:
                due.append(_Due(row.id, row.guest_name, uris[row.node_id]))
            else:  # nothing to give a guest that does not trust the CA; not asked again until the files change
                skipped.append(row.id)
    report = TrustReport(digest=files.digest)
    delivered = list(skipped)
    for target in due:
        try:  # no transaction is open while the guest's agent writes
            driver = drivers.connect(target.node_uri)
            driver.write_guest_file(target.guest_name, CA_KEYS_PATH, files.ca_keys.encode(), 0o644)
            driver.write_guest_file(target.guest_name, REVOKED_KEYS_PATH, files.revoked_keys, 0o644)
        except DriverError as error:
            report.failed[target.guest_name] = str(error)
            continue
        delivered.append(target.instance_id)
        report.pushed.append(target.guest_name)
    if delivered:
        with db.session() as session:
            repository.record_ssh_trust(session, delivered, files.digest)
    return report


@DBOS.step(name="cloudlet.instances.ssh_trust_push")
def push_step() -> TrustReport:
    """One round of pushes."""
    running = worker.current()
    return push_all(running.db, running.drivers)


@DBOS.workflow(name="cloudlet.instances.ssh_trust")
def push_run(scheduled_at: datetime, _context: Any) -> None:
    """One tick of the schedule; logs the guests given new files and those that could not take them."""
    report = push_step()
    if report.pushed or report.failed:
        log.info("SSH CA trust pushed", scheduled_at=scheduled_at.isoformat(), pushed=report.pushed,
                 failed=report.failed)


def schedules(settings: Settings) -> list[worker.Schedule]:
    """The push schedule the worker applies at start."""
    return [worker.Schedule(SCHEDULE_NAME, push_run, settings.ssh_trust_push_schedule)]
