"""Consoles: a VNC link proxied to the guest's VNC server, the interactive serial console, and the serial log.

A VNC link is a websocket URL with a one-time token, and a VNC password. Asking for one gives the
running guest's VNC server a fresh password that expires with the token (the driver's vnc_console),
and stores the token's SHA-256 digest with where that server listens. The websocket presents the
token instead of a credential: the first connection uses it up, and the control plane then carries
bytes between the websocket and the guest's VNC server, whose own RFB handshake asks the client for
the password. A newer link replaces the password of an older one that was not used yet.

VNC is offered where the driver says its endpoints are reachable (capabilities.vnc_console: a node
on this machine); the serial console goes through the hypervisor's own connection and works on any
node. The serial log is read from the node's console log (see the driver's console_output).
"""

from __future__ import annotations

import hashlib
import secrets
import string
from datetime import datetime, timedelta
from urllib.parse import urlencode, urlsplit, urlunsplit

from pydantic import BaseModel
from sqlalchemy.orm import Session

from cloudlet.config import Settings
from cloudlet.drivers.base import (
    VNC_PASSWORD_MAX,
    ConsoleOutput,
    DriverError,
    GuestFailed,
    GuestNotFound,
    HypervisorDriver,
    RetryLater,
    SerialConsole,
)
from cloudlet.instances import actions, console_tickets
from cloudlet.instances.console_tickets import ConsoleTicket
from cloudlet.instances.models import Instance, InstanceStatus
from cloudlet.instances.schemas import Allowed
from cloudlet.kit import clock
from cloudlet.kit.errors import Conflict, NotFound, Unauthenticated, Unavailable
from cloudlet.nodes import service as nodes
from cloudlet.projects import service as projects
from cloudlet.projects.schemas import Actor

VNC_PROXY_PATH = "/api/consoles/vnc"
TOKEN_BYTES = 32
PASSWORD_ALPHABET = string.ascii_letters + string.digits
KEEP_EXPIRED = timedelta(days=1)  # expired tickets are kept a day (to tell "expired" from "unknown"), then purged


class VncLink(BaseModel):
    """A console link: the websocket URL with its one-time token, and the VNC password it asks for."""

    instance_id: int
    instance_uuid: str
    url: str
    token: str
    password: str
    expires_at: datetime
    expires_in_seconds: int


class VncTarget(BaseModel):
    """Where the proxy connects once a ticket is used: the guest's VNC server."""

    instance_id: int
    host: str
    port: int


class SerialLogSource(BaseModel):
    """Where an instance's serial log is kept: its guest on a node."""

    instance_uuid: str
    node_name: str
    node_uri: str
    guest_name: str


def websocket_base(settings: Settings) -> str:
    """CLOUDLET_PUBLIC_URL with its scheme made a websocket one: https -> wss, http -> ws."""
    parts = urlsplit(settings.public_url)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def token_digest(token: str) -> str:
    """What is stored of a console token."""
    return hashlib.sha256(token.encode()).hexdigest()


def vnc_password() -> str:
    """A random VNC password of the longest length VNC authentication uses."""
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(VNC_PASSWORD_MAX))


def _driver(session: Session, drivers: nodes.Drivers, row: Instance) -> tuple[str, HypervisorDriver]:
    if row.node_id is None:
        raise Conflict("The instance has no guest yet.", code="NO_GUEST")
    node = nodes.get_node(session, row.node_id)
    try:
        return node.name, drivers.connect(node.uri)
    except DriverError as error:
        raise Unavailable(f"Node {node.name} did not answer: {error}", code="NODE_UNREACHABLE") from None


def _translated(node_name: str, error: DriverError) -> Exception:
    if isinstance(error, GuestNotFound):
        return Conflict("The instance's guest does not exist (yet, or any more).", code="NO_GUEST")
    if isinstance(error, GuestFailed):
        return Conflict(f"The console cannot be opened: {error.reason}", code="CONSOLE_UNAVAILABLE")
    if isinstance(error, RetryLater):
        return Unavailable(f"Node {node_name} is busy with the guest; try again in {error.after:.0f} seconds.",
                           code="NODE_BUSY")
    return Unavailable(f"Node {node_name} did not answer: {error}", code="NODE_UNREACHABLE")


def open_vnc(session: Session, drivers: nodes.Drivers, settings: Settings, actor: Actor, ident: int | str) -> VncLink:
    """A VNC link to a running instance: a fresh VNC password on its guest, and a one-time token for the proxy."""
    row = actions.instance_of(session, actor, ident)
    actions.require_allowed(row, Allowed.CONSOLE)
    node_name, driver = _driver(session, drivers, row)
    if not driver.capabilities.vnc_console:
        raise Unavailable(f"Node {node_name} keeps its guests' VNC on its own loopback address, which this control "
                          "plane cannot reach; use the serial console.", code="CONSOLE_UNAVAILABLE")
    now = clock.now()
    expires_at = now + timedelta(seconds=settings.console_ticket_seconds)
    password = vnc_password()
    try:
        endpoint = driver.vnc_console(row.guest_name, password, expires_at)
    except DriverError as error:
        raise _translated(node_name, error) from None
    token = secrets.token_urlsafe(TOKEN_BYTES)
    console_tickets.purge(session, now - KEEP_EXPIRED)
    console_tickets.insert(session, ConsoleTicket(digest=token_digest(token), instance_id=row.id,
                                                  user_id=actor.user.id, host=endpoint.host, port=endpoint.port,
                                                  expires_at=expires_at))
    url = f"{websocket_base(settings)}{VNC_PROXY_PATH}?{urlencode({'token': token})}"
    return VncLink(instance_id=row.id, instance_uuid=row.uuid, url=url, token=token, password=password,
                   expires_at=expires_at, expires_in_seconds=settings.console_ticket_seconds)


def redeem_vnc(session: Session, token: str) -> VncTarget:
    """Use up a console token: where to connect, or Unauthenticated when it is unknown, used or expired."""
    ticket = console_tickets.by_digest(session, token_digest(token)) if token else None
    if ticket is None:
        raise Unauthenticated("The console token is not valid.", code="INVALID_CONSOLE_TOKEN")
    now = clock.now()
    if ticket.expires_at <= now:
        raise Unauthenticated("The console token has expired; ask for a new console link.",
                              code="CONSOLE_TOKEN_EXPIRED")
    if ticket.used_at is not None or not console_tickets.use(session, ticket.id, now):
        raise Unauthenticated("The console token was used already; ask for a new console link.",
                              code="CONSOLE_TOKEN_USED")
    row = actions.instance_row(session, ticket.instance_id)
    try:
        projects.require_membership(session, ticket.user_id, row.project_id)
    except NotFound:  # the user left the project since the link was made
        raise Unauthenticated("The console token is not valid.", code="INVALID_CONSOLE_TOKEN") from None
    if row.status is not InstanceStatus.RUNNING:
        raise Conflict(f"The instance is {row.status.value}; its console is closed.", code="INVALID_STATE")
    return VncTarget(instance_id=row.id, host=ticket.host, port=ticket.port)


def open_serial(session: Session, drivers: nodes.Drivers, actor: Actor, ident: int | str) -> SerialConsole:
    """An interactive session on a running instance's serial console (an earlier session is taken over).

    The caller closes it.
    """
    row = actions.instance_of(session, actor, ident)
    actions.require_allowed(row, Allowed.CONSOLE)
    node_name, driver = _driver(session, drivers, row)
    try:
        return driver.open_serial(row.guest_name)
    except DriverError as error:
        raise _translated(node_name, error) from None


def serial_log_source(session: Session, actor: Actor, ident: int | str) -> SerialLogSource:
    """Where the instance's serial log is, once the actor may read it (the instance needs a guest)."""
    row = actions.instance_of(session, actor, ident)
    if row.node_id is None:
        raise Conflict("The instance has no guest yet.", code="NO_GUEST")
    node = nodes.get_node(session, row.node_id)
    return SerialLogSource(instance_uuid=row.uuid, node_name=node.name, node_uri=node.uri,
                           guest_name=row.guest_name)


def read_serial_log(drivers: nodes.Drivers, source: SerialLogSource) -> ConsoleOutput:
    """The guest's serial console output since it last started (no database needed: for live streams)."""
    try:
        return drivers.connect(source.node_uri).console_output(source.guest_name)
    except DriverError as error:
        raise _translated(source.node_name, error) from None
