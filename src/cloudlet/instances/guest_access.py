"""A running server's guest, reached through its QEMU guest agent on its node: what the files API and the AI
agent's tools work on. Only a running server whose image has a guest agent is reached; a suspended one is
refused (403), one that is not running or has no agent answers 409.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy.orm import Session

from cloudlet.drivers.base import HypervisorDriver
from cloudlet.images.models import ImageCapability
from cloudlet.instances import actions
from cloudlet.instances.models import InstanceStatus
from cloudlet.kit.errors import Conflict, Forbidden
from cloudlet.nodes import service as nodes
from cloudlet.projects.schemas import Actor


class RunningGuest(NamedTuple):
    """A running server's guest on its node's driver."""

    driver: HypervisorDriver
    name: str  # the guest's name on its node
    uuid: str  # the server's
    project_id: int
    hostname: str


class Server(NamedTuple):
    """A server as other domains key their records: its uuid and project."""

    uuid: str
    project_id: int


def server_of(session: Session, actor: Actor, ident: int | str) -> Server:
    """The actor's server, whatever its state (NotFound for another project's)."""
    row = actions.instance_of(session, actor, ident)
    return Server(row.uuid, row.project_id)


def running_guest(session: Session, drivers: nodes.Drivers, actor: Actor, ident: int | str, *,
                  refuse_suspended: bool = False) -> RunningGuest:
    """The actor's running server's guest (NotFound for another project's)."""
    row = actions.instance_of(session, actor, ident)
    if refuse_suspended and row.status is InstanceStatus.SUSPENDED:
        raise Forbidden("The server is suspended.", code="INSTANCE_SUSPENDED")
    if row.status is not InstanceStatus.RUNNING or row.node_id is None:
        raise Conflict(f"The server is {row.status.value}: it is reached through its guest agent while it runs.",
                       code="INSTANCE_NOT_RUNNING")
    if ImageCapability.GUEST_AGENT not in actions.image_capabilities(session, row):
        raise Conflict("The server's image has no guest agent, so Cloudlet cannot reach inside it; use SSH.",
                       code="NO_GUEST_AGENT")
    driver = drivers.connect(nodes.get_node(session, row.node_id).uri)
    return RunningGuest(driver, row.guest_name, row.uuid, row.project_id, row.hostname)
