"""The WAF: customers' apps behind the edge (Cloudlet's nginx with ModSecurity and the OWASP CRS).

An app proxies its hostnames to an address of one of its owner's servers, and only while that address stays
that server's. Every change to what the edge serves for an app makes a numbered version (a snapshot of the
app's edge configuration) and opens, once per transaction, an `edge_push` action that gives the edge its whole
configuration once the change commits (edge/push.py); the app shows `pending` until the edge serves it, or
`error` with why the edge refused it. Rolling back to a version makes a new version with that one's
configuration. Hostnames are real DNS names, unique across all apps of all customers, never under the edge's
own domain or a name the operator reserved.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from cloudlet.actions import service as engine
from cloudlet.config import Settings
from cloudlet.edge import repository
from cloudlet.edge.models import CertificateStatus, WafApp, WafBlock, WafHostname, WafVersion
from cloudlet.edge.schemas import (
    BlockRead,
    EdgeState,
    FirewallRead,
    FirewallUpdate,
    HostnameCreate,
    HostnameRead,
    RollbackRequest,
    VersionRead,
    WafAppCreate,
    WafAppRead,
)
from cloudlet.instances import service as instances
from cloudlet.kit import clock
from cloudlet.kit.errors import Conflict, Invalid, NotConfigured, NotFound
from cloudlet.kit.secretbox import SecretBox
from cloudlet.networking import service as networking
from cloudlet.projects import service as projects
from cloudlet.projects.schemas import Actor

EDGE_PUSH = "cloudlet_edge_push"  # session.info key: the edge push action this transaction opened
PUSH_COMMAND = "edge_push"
PUSH_TASKS = ("edge_apply", "edge_record")  # the last is recorded by the push's conclusion
CERTIFICATE_COMMAND = "certificate_issue"
CERTIFICATE_TASKS = ("acme_order", "acme_challenge", "acme_validate", "certificate_install", "certificate_record")
RENEW_BEFORE = timedelta(days=30)  # a certificate is renewed this long before it expires (Let's Encrypt's advice)
TLS_ORIGIN_PORT = 443
NO_ACME = "no ACME directory is configured (CLOUDLET_ACME_DIRECTORY): the edge serves this hostname on HTTP only"
ORIGIN_GONE = "the origin address no longer belongs to the app's server: the edge does not serve the app"


# --- reading -----------------------------------------------------------------------------------------------


def _state(app: WafApp) -> tuple[EdgeState, str | None]:
    if app.edge_error:  # the edge refused its latest version, or serves it no longer (why: edge/push.py)
        return EdgeState.ERROR, app.edge_error
    if app.applied_version >= app.version:
        return EdgeState.ACTIVE, None
    return EdgeState.PENDING, None


def _hostname_read(row: WafHostname) -> HostnameRead:
    return HostnameRead(id=row.id, hostname=row.hostname, primary=row.is_primary, ssl_status=row.cert_status,
                        ssl_error=row.cert_error or None, ssl_expires_at=row.cert_not_after, created_at=row.created_at)


def _read(app: WafApp, names: Sequence[WafHostname]) -> WafAppRead:
    status, error = _state(app)
    return WafAppRead(id=app.id, name=app.name, edge_name=app.edge_name, origin_ip=app.origin_ip,
                      origin_port=app.origin_port, hostnames=[_hostname_read(row) for row in names],
                      firewall=FirewallRead(enabled=app.waf_enabled, paranoia_level=app.paranoia,
                                            excluded_rules=list(app.excluded_rules)),
                      version=app.version, status=status, error=error, requests=app.requests, blocked=app.blocked,
                      created_at=app.created_at, updated_at=app.updated_at)


def _own(session: Session, actor: Actor, app_id: int, *, lock: bool = False) -> WafApp:
    """An app of one of the actor's projects (another project's is not found)."""
    found = repository.app(session, app_id, lock=lock)
    if found is None or found.project_id not in projects.in_reach(session, actor):
        raise NotFound("WAF app", app_id)
    return found


def list_apps(session: Session, actor: Actor) -> list[WafAppRead]:
    """The apps of the actor's projects, oldest first, with their hostnames."""
    found = repository.apps(session, projects.in_reach(session, actor))
    names = repository.hostnames(session, [app.id for app in found])
    return [_read(app, names[app.id]) for app in found]


def get_app(session: Session, actor: Actor, app_id: int) -> WafAppRead:
    """One app with its hostnames and their certificates."""
    app = _own(session, actor, app_id)
    return _read(app, repository.hostnames(session, [app.id])[app.id])


def versions(session: Session, actor: Actor, app_id: int) -> list[VersionRead]:
    """An app's versions, newest first."""
    app = _own(session, actor, app_id)
    return [VersionRead(number=row.number, change=row.change, config=row.config, current=row.number == app.version,
                        created_at=row.created_at) for row in repository.versions(session, app.id)]


def blocked(session: Session, actor: Actor, app_id: int, limit: int = 100) -> list[BlockRead]:
    """The latest requests the app's rule set blocked, newest first."""
    app = _own(session, actor, app_id)
    return [BlockRead(at=row.at, client=row.client, rule_id=row.rule_id, uri=row.uri, message=row.message)
            for row in repository.blocks(session, app.id, limit)]


# --- checking what callers send ----------------------------------------------------------------------------


def _origin(session: Session, actor: Actor, text: str) -> tuple[str, str, int]:
    """The origin address in canonical form, the server that holds it and that server's project; Invalid unless
    it is an address of one of the actor's servers (the edge never proxies to anyone else's or anywhere else)."""
    try:
        address = str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise Invalid("origin_ip", f"{text!r} is not an IP address.") from None
    mine = "origin_ip must be an address of one of your servers."
    try:
        allocation = networking.get_allocation(session, address)
        if not allocation.owner:
            raise Invalid("origin_ip", mine)
        server = instances.get_instance(session, actor, allocation.owner)
    except NotFound:
        raise Invalid("origin_ip", mine) from None
    return address, server.uuid, server.project_id


def _reserved(settings: Settings) -> list[str]:
    names = [settings.edge_domain, *settings.edge_reserved_names]
    api = urlsplit(settings.public_url).hostname
    if api:
        names.append(api)
    return [name.strip().lower().removesuffix(".") for name in names if name.strip()]


def _hostname(session: Session, settings: Settings, text: str) -> str:
    """A hostname an app may take: a real DNS name, free, and not reserved; Invalid or Conflict otherwise."""
    name = networking.normalize_hostname(text, "hostname")
    for reserved in _reserved(settings):
        if name == reserved or name.endswith("." + reserved):
            raise Invalid("hostname", f"{name} is reserved by the operator and cannot be put behind the WAF.")
    if repository.hostname_taken(session, name) is not None:
        raise _taken(name)
    return name


def _taken(name: str) -> Conflict:
    return Conflict(f"The hostname {name} is already in use by a WAF app.", code="HOSTNAME_TAKEN")


# --- changing ----------------------------------------------------------------------------------------------


def _config(app: WafApp, names: Sequence[str]) -> dict[str, Any]:
    return {"origin_ip": app.origin_ip, "origin_port": app.origin_port, "waf_enabled": app.waf_enabled,
            "paranoia_level": app.paranoia, "excluded_rules": list(app.excluded_rules), "hostnames": list(names)}


def _changed(session: Session, app: WafApp, change: str) -> None:
    """Record the app's configuration as its next version and have the edge take it once this commits."""
    names = [row.hostname for row in repository.hostnames(session, [app.id])[app.id]]
    app.version += 1
    app.edge_error = ""
    app.updated_at = clock.now()
    repository.add(session, WafVersion(app_id=app.id, number=app.version, change=change[:200],
                                       config=_config(app, names), created_at=clock.now()))
    push(session)


def push(session: Session) -> None:
    """Open the edge push of this transaction (once): it gives the edge its whole configuration after the
    commit."""
    if EDGE_PUSH not in session.info:
        session.info[EDGE_PUSH] = engine.begin_unheld(session, PUSH_COMMAND, PUSH_TASKS).id


def _new_hostname(session: Session, settings: Settings, app: WafApp, name: str, *, primary: bool) -> WafHostname:
    """A hostname of the app, its certificate ordered (once this commits) when an ACME directory is configured."""
    row = WafHostname(app_id=app.id, hostname=name, is_primary=primary,
                      cert_status=CertificateStatus.PENDING if settings.acme_directory else CertificateStatus.FAILED,
                      cert_error="" if settings.acme_directory else NO_ACME, created_at=clock.now())
    if not repository.insert_hostname(session, row):  # taken between the check and the insert
        raise _taken(name)
    if settings.acme_directory:
        _order_certificate(session, row)
    return row


def _order_certificate(session: Session, row: WafHostname) -> None:
    row.cert_status, row.cert_error, row.cert_retry_at = CertificateStatus.PENDING, "", None
    row.cert_action_id = engine.begin_unheld(session, CERTIFICATE_COMMAND, CERTIFICATE_TASKS,
                                             {"hostname_id": row.id}).id
    session.flush()


def create_app(session: Session, settings: Settings, actor: Actor, data: WafAppCreate) -> WafAppRead:
    """Put an app behind the edge; the edge serves it shortly (and its certificate is ordered)."""
    address, server, project_id = _origin(session, actor, data.origin_ip)
    name = _hostname(session, settings, data.hostname)
    if repository.count_apps(session, project_id) >= settings.waf_apps_per_project:
        raise Conflict(f"A project has at most {settings.waf_apps_per_project} WAF apps.", code="APP_LIMIT")
    app = WafApp(project_id=project_id, name=data.name.strip() or name, edge_name=_edge_name(settings),
                 instance_uuid=server, origin_ip=address, origin_port=data.origin_port or 80, waf_enabled=True,
                 paranoia=1, excluded_rules=[], version=0, applied_version=0, edge_error="", requests=0, blocked=0,
                 created_at=clock.now(), updated_at=clock.now())
    repository.add(session, app)
    _new_hostname(session, settings, app, name, primary=True)
    _changed(session, app, f"created with {name}")
    return get_app(session, actor, app.id)


def _edge_name(settings: Settings) -> str:
    return f"w{secrets.token_hex(6)}.{settings.edge_domain}"


def delete_app(session: Session, actor: Actor, app_id: int) -> None:
    """Take an app off the edge (with its hostnames, versions and blocked requests)."""
    app = _own(session, actor, app_id, lock=True)
    repository.remove(session, app)
    push(session)


def set_firewall(session: Session, actor: Actor, app_id: int, data: FirewallUpdate) -> WafAppRead:
    """Turn the app's rule set on or off (and set its paranoia level and exclusions)."""
    app = _own(session, actor, app_id, lock=True)
    app.waf_enabled = data.enabled
    if data.paranoia_level is not None:
        app.paranoia = data.paranoia_level
    if data.excluded_rules is not None:
        app.excluded_rules = sorted(set(data.excluded_rules))
    _changed(session, app, f"rule set {'on' if app.waf_enabled else 'off'}, paranoia {app.paranoia}"
                           + (f", without {len(app.excluded_rules)} rules" if app.excluded_rules else ""))
    return get_app(session, actor, app.id)


def add_hostname(session: Session, settings: Settings, actor: Actor, app_id: int,
                 data: HostnameCreate) -> HostnameRead:
    """Add a hostname to an app; the edge answers for it shortly (and its certificate is ordered)."""
    app = _own(session, actor, app_id, lock=True)
    name = _hostname(session, settings, data.hostname)
    if len(repository.hostnames(session, [app.id])[app.id]) >= settings.waf_hostnames_per_app:
        raise Conflict(f"An app has at most {settings.waf_hostnames_per_app} hostnames.", code="HOSTNAME_LIMIT")
    row = _new_hostname(session, settings, app, name, primary=False)
    _changed(session, app, f"hostname {name} added")
    return _hostname_read(row)


def _own_hostname(session: Session, app: WafApp, hostname_id: int) -> WafHostname:
    for row in repository.hostnames(session, [app.id])[app.id]:
        if row.id == hostname_id:
            return row
    raise NotFound("hostname", hostname_id)


def remove_hostname(session: Session, actor: Actor, app_id: int, hostname_id: int) -> None:
    """Remove a hostname from an app (not its last one: delete the app instead); the oldest other one becomes
    primary when the primary goes."""
    app = _own(session, actor, app_id, lock=True)
    row = _own_hostname(session, app, hostname_id)
    others = [other for other in repository.hostnames(session, [app.id])[app.id] if other.id != row.id]
    if not others:
        raise Conflict("An app keeps at least one hostname; delete the app to take it off the edge.",
                       code="LAST_HOSTNAME")
    if row.is_primary:
        min(others, key=lambda other: other.id).is_primary = True
    repository.remove(session, row)
    _changed(session, app, f"hostname {row.hostname} removed")


def retry_ssl(session: Session, settings: Settings, actor: Actor, app_id: int, hostname_id: int) -> HostnameRead:
    """Order the hostname's certificate again."""
    app = _own(session, actor, app_id, lock=True)
    row = _own_hostname(session, app, hostname_id)
    if not settings.acme_directory:
        raise NotConfigured("No ACME directory is configured (CLOUDLET_ACME_DIRECTORY): certificates cannot be "
                            "ordered.")
    if row.cert_action_id is not None and engine.is_running(session, row.cert_action_id):
        raise Conflict(f"A certificate order for {row.hostname} is in progress.", code="ORDER_IN_PROGRESS")
    if row.cert_retry_at is not None and row.cert_retry_at > clock.now():
        raise Conflict(f"The CA asked for a pause before the next order for {row.hostname}: retry after "
                       f"{row.cert_retry_at.isoformat()}.", code="CA_RATE_LIMITED")
    _order_certificate(session, row)
    return _hostname_read(row)


def rollback(session: Session, settings: Settings, actor: Actor, app_id: int, data: RollbackRequest) -> WafAppRead:
    """Give the app the configuration of one of its versions again, as a new version."""
    app = _own(session, actor, app_id, lock=True)
    target = repository.version(session, app.id, data.version)
    if target is None:
        raise NotFound("version", data.version)
    config = target.config
    address, server, project_id = _origin(session, actor, config["origin_ip"])
    if project_id != app.project_id:
        raise Invalid("version", f"Version {target.number}'s origin is no longer an address of this app's project.")
    app.instance_uuid, app.origin_ip, app.origin_port = server, address, config["origin_port"]
    app.waf_enabled, app.paranoia = config["waf_enabled"], config["paranoia_level"]
    app.excluded_rules = list(config["excluded_rules"])
    wanted: list[str] = list(config["hostnames"])
    current = {row.hostname: row for row in repository.hostnames(session, [app.id])[app.id]}
    for name in wanted:
        if name not in current:
            _hostname(session, settings, name)  # free again and still allowed, or the rollback is refused
    for name, row in current.items():
        if name not in wanted:
            repository.remove(session, row)
    for index, name in enumerate(wanted):
        row = current.get(name) or _new_hostname(session, settings, app, name, primary=False)
        row.is_primary = index == 0
    _changed(session, app, f"rolled back to version {target.number}")
    return get_app(session, actor, app.id)


# --- what the edge serves ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServedCertificate:
    """A hostname's certificate as the edge serves it (the key opened: never logged)."""

    hostname: str
    chain: str
    key: str = field(repr=False)


@dataclass(frozen=True)
class ServedApp:
    """An app as the edge serves it: its configuration, at which version, and its hostnames' certificates."""

    app_id: int
    version: int
    hostnames: tuple[str, ...]
    origin_ip: str
    origin_port: int
    waf_enabled: bool
    paranoia: int
    excluded_rules: tuple[int, ...]
    certificates: tuple[ServedCertificate, ...] = ()


@lru_cache(maxsize=4)
def _box(master_secret: str) -> SecretBox:
    return SecretBox(master_secret, "edge-certificates")


def served_apps(session: Session, settings: Settings) -> tuple[list[ServedApp], dict[int, str]]:
    """Every app the edge should serve now, and why the others are left out (their origin address is no longer
    their server's)."""
    found = repository.apps(session)
    names = repository.hostnames(session, [app.id for app in found])
    held = {(allocation.owner, allocation.address)
            for allocation in networking.allocations_of(session, sorted({app.instance_uuid for app in found}))}
    served, left_out = [], {}
    for app in found:
        if (app.instance_uuid, app.origin_ip) not in held:
            left_out[app.id] = ORIGIN_GONE
            continue
        served.append(_served(settings, app.id, app.version, _config(app, [row.hostname for row in names[app.id]]),
                              names[app.id]))
    return served, left_out


def _served(settings: Settings, app_id: int, version: int, config: dict[str, Any],
            names: Sequence[WafHostname]) -> ServedApp:
    hostnames = tuple(config["hostnames"])
    certificates = tuple(ServedCertificate(row.hostname, row.cert_chain,
                                           _box(settings.jwt_secret).open(row.cert_key_sealed))
                         for row in names if row.hostname in hostnames and row.cert_chain and row.cert_key_sealed)
    return ServedApp(app_id, version, hostnames, config["origin_ip"], config["origin_port"], config["waf_enabled"],
                     config["paranoia_level"], tuple(config["excluded_rules"]), certificates)


def served_earlier(session: Session, settings: Settings, app_id: int) -> ServedApp | None:
    """The app as the edge last took it (the version it serves now), or None when it never took one."""
    app = repository.app(session, app_id)
    if app is None or app.applied_version == 0:
        return None
    earlier = repository.version(session, app.id, min(app.applied_version, app.version))
    if earlier is None:
        return None
    return _served(settings, app.id, earlier.number, earlier.config, repository.hostnames(session, [app.id])[app.id])


def record_push(session: Session, served: Sequence[ServedApp], left_out: dict[int, str], error: str | None) -> None:
    """Note which version of each app the edge now serves, or why it refused them (`error` for all of them, or
    for the apps in left_out, the reason given there)."""
    for item in served:
        app = repository.app(session, item.app_id, lock=True)
        if app is None:
            continue
        if error is None:
            app.applied_version = max(app.applied_version, item.version)
            if app.applied_version >= app.version:
                app.edge_error = ""
        elif app.version == item.version and app.applied_version < app.version:
            app.edge_error = error[:2000]
    for app_id, why in left_out.items():
        app = repository.app(session, app_id, lock=True)
        if app is not None:
            app.edge_error = why[:2000]
    session.flush()


def record_traffic(session: Session, app_id: int, requests: int, blocks: Sequence[WafBlock]) -> None:
    """Count what the edge saw of an app and keep the requests its rule set blocked."""
    app = repository.app(session, app_id, lock=True)
    if app is None:
        return
    app.requests += requests
    app.blocked += len(blocks)
    for block in blocks:
        block.app_id = app_id
        repository.add(session, block)
    repository.trim_blocks(session, app_id)
    session.flush()


# --- certificates ------------------------------------------------------------------------------------------


def hostname_of(session: Session, hostname_id: int) -> str | None:
    """A hostname by its id; None once it was removed."""
    row = repository.hostname(session, hostname_id)
    return row.hostname if row is not None else None


@dataclass(frozen=True)
class KeptCertificate:
    """What a hostname held before a new certificate took its place (to put back if the edge refuses it)."""

    chain: str
    key_sealed: str = field(repr=False)


def install_certificate(session: Session, settings: Settings, hostname_id: int, action_id: int, chain: str,
                        key_pem: str) -> KeptCertificate | None:
    """Keep a hostname's new certificate and key (sealed) for the edge to serve; what it held before, or None when
    a later order took over or the hostname went (nothing is kept then)."""
    row = repository.hostname(session, hostname_id, lock=True)
    if row is None or row.cert_action_id != action_id:
        return None
    kept = KeptCertificate(row.cert_chain, row.cert_key_sealed)
    row.cert_chain, row.cert_key_sealed = chain, _box(settings.jwt_secret).seal(key_pem)
    session.flush()
    return kept


def restore_certificate(session: Session, hostname_id: int, kept: KeptCertificate) -> None:
    """Put back what a hostname held before a certificate the edge refused."""
    row = repository.hostname(session, hostname_id, lock=True)
    if row is not None:
        row.cert_chain, row.cert_key_sealed = kept.chain, kept.key_sealed
        session.flush()


def certificate_issued(session: Session, hostname_id: int, action_id: int, not_after: datetime) -> None:
    """Record that the edge serves a hostname's new certificate (unless a later order took over or the hostname
    went)."""
    row = repository.hostname(session, hostname_id, lock=True)
    if row is not None and row.cert_action_id == action_id:
        row.cert_status, row.cert_error, row.cert_not_after = CertificateStatus.ISSUED, "", not_after
        session.flush()


def certificate_failed(session: Session, hostname_id: int, action_id: int, reason: str,
                       retry_after: datetime | None = None) -> None:
    """Record why a hostname's order failed (a certificate it had stays served until it expires), and when a
    rate-limited CA allows the next order."""
    row = repository.hostname(session, hostname_id, lock=True)
    if row is not None and row.cert_action_id == action_id:
        row.cert_error = reason[:2000]
        if retry_after is not None:
            row.cert_retry_at = retry_after
        if row.cert_status is not CertificateStatus.ISSUED:
            row.cert_status = CertificateStatus.FAILED
        session.flush()


def renew_due(session: Session, settings: Settings, now: datetime) -> list[str]:
    """Order certificates again for the hostnames whose certificate expires within RENEW_BEFORE, unless an
    order is running or the CA asked for a pause; the hostnames ordered."""
    if not settings.acme_directory:
        return []
    ordered = []
    for row in repository.expiring(session, now + RENEW_BEFORE):
        if row.cert_action_id is not None and engine.is_running(session, row.cert_action_id):
            continue
        if row.cert_retry_at is not None and row.cert_retry_at > now:
            continue
        _order_certificate(session, row)
        ordered.append(row.hostname)
    return ordered


def publish_challenges(session: Session, hostname_id: int, action_id: int, keys: dict[str, str]) -> None:
    """Have the API serve an order's key authorizations to every edge (until withdraw_challenges)."""
    row = repository.hostname(session, hostname_id, lock=True)
    if row is not None and row.cert_action_id == action_id:
        repository.replace_challenges(session, hostname_id, keys)


def withdraw_challenges(session: Session, hostname_id: int) -> None:
    """Stop serving a hostname's key authorizations (its order was decided)."""
    repository.replace_challenges(session, hostname_id, {})


def key_authorization(session: Session, token: str) -> str:
    """The key authorization of a pending HTTP-01 challenge, by its token (what the CA fetches through an edge);
    NotFound for any other token."""
    found = repository.challenge(session, token)
    if found is None:
        raise NotFound("challenge", token)
    return found.key_authorization
