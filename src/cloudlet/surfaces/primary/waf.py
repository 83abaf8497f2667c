"""Primary surface: the WAF at /api/shield/waf: customers' apps behind Cloudlet's edge (nginx, ModSecurity, CRS).

    GET    /api/shield/waf                                         [App]
    POST   /api/shield/waf                                         201 App: {"name", "origin_ip", "origin_port"
                                                                   (default 80; 443 proxies over TLS), "hostname"}
    GET    /api/shield/waf/{id}                                    App
    DELETE /api/shield/waf/{id}                                    204: the edge stops serving it
    POST   /api/shield/waf/{id}/firewall                           App: {"enabled"} and, as extensions,
                                                                   "paranoia_level" (1-4), "excluded_rules" (CRS ids)
    POST   /api/shield/waf/{id}/hostnames                          201 Hostname: {"hostname"}
    DELETE /api/shield/waf/{id}/hostnames/{hostnameId}             204 (not the app's last hostname: 409)
    POST   /api/shield/waf/{id}/hostnames/{hostnameId}/retry-ssl   Hostname: its certificate is ordered again
    GET    /api/shield/waf/{id}/versions                           [Version], newest first (extension)
    POST   /api/shield/waf/{id}/rollback                           App: {"version"} (extension)
    GET    /api/shield/waf/{id}/blocked                            [Block], newest first (extension)

App = {"id", "name", "edge_name" (CNAME the hostnames to it), "origin_ip", "origin_port", "hostnames":
[Hostname], "firewall": {"enabled", "paranoia_level", "excluded_rules"}, "version", "status" ("active",
"pending" until the edge serves the latest version, "error" with "error" saying why), "requests", "blocked",
"created_at", "updated_at"}; Hostname = {"id", "hostname", "primary", "ssl_status" ("pending", "issued",
"failed" with "ssl_error"), "ssl_expires_at", "created_at"}; Version = {"number", "change", "config",
"current", "created_at"}; Block = {"at", "client", "rule_id", "uri", "message"}.

origin_ip must be an address of one of the caller's servers (422 otherwise); a hostname must be a real DNS name
(422), not the edge's own domain or a name the operator reserved (422), and free across all apps (409). An app
has at most CLOUDLET_WAF_HOSTNAMES_PER_APP hostnames and a project CLOUDLET_WAF_APPS_PER_PROJECT apps (409).
Another project's app is 404. Scopes as the reference assigns them: waf:read to read, waf:write to change.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from cloudlet.auth.caller import Caller
from cloudlet.edge import service as waf
from cloudlet.edge.schemas import (
    BlockRead,
    FirewallUpdate,
    HostnameCreate,
    HostnameRead,
    RollbackRequest,
    VersionRead,
    WafAppCreate,
    WafAppRead,
)
from cloudlet.surfaces.deps import AppSettings, DbSession, requires
from cloudlet.surfaces.params import PathId
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/api/shield/waf", tags=["primary"])

Reader = Annotated[Caller, requires(Ability.WAF_READ)]
Writer = Annotated[Caller, requires(Ability.WAF_WRITE)]


@router.get("", response_model=list[WafAppRead], summary="List WAF apps")
def list_apps(caller: Reader, db: DbSession) -> list[WafAppRead]:
    """Apps with hostnames, firewall state, origin IP."""
    return waf.list_apps(db, caller)


@router.post("", response_model=WafAppRead, status_code=201, summary="Create a WAF app")
def create_app(body: WafAppCreate, caller: Writer, db: DbSession, settings: AppSettings) -> WafAppRead:
    """Put an app behind the edge; TLS issuance is queued."""
    return waf.create_app(db, settings, caller, body)


@router.get("/{app_id}", response_model=WafAppRead, summary="Get a WAF app")
def get_app(app_id: PathId, caller: Reader, db: DbSession) -> WafAppRead:
    """An app with its hostnames and their SSL status."""
    return waf.get_app(db, caller, app_id)


@router.delete("/{app_id}", status_code=204, summary="Delete a WAF app")
def delete_app(app_id: PathId, caller: Writer, db: DbSession) -> Response:
    """Take the app off the edge."""
    waf.delete_app(db, caller, app_id)
    return Response(status_code=204)


@router.post("/{app_id}/firewall", response_model=WafAppRead, summary="Toggle the rule set")
def set_firewall(app_id: PathId, body: FirewallUpdate, caller: Writer, db: DbSession) -> WafAppRead:
    """Enable or disable the OWASP CRS for the app (with its paranoia level and exclusions)."""
    return waf.set_firewall(db, caller, app_id, body)


@router.post("/{app_id}/hostnames", response_model=HostnameRead, status_code=201, summary="Add a hostname")
def add_hostname(app_id: PathId, body: HostnameCreate, caller: Writer, db: DbSession,
                 settings: AppSettings) -> HostnameRead:
    """Add a hostname; its certificate is ordered."""
    return waf.add_hostname(db, settings, caller, app_id, body)


@router.delete("/{app_id}/hostnames/{hostname_id}", status_code=204, summary="Remove a hostname")
def remove_hostname(app_id: PathId, hostname_id: PathId, caller: Writer, db: DbSession) -> Response:
    """Remove a hostname from the app."""
    waf.remove_hostname(db, caller, app_id, hostname_id)
    return Response(status_code=204)


@router.post("/{app_id}/hostnames/{hostname_id}/retry-ssl", response_model=HostnameRead,
             summary="Order a hostname's certificate again")
def retry_ssl(app_id: PathId, hostname_id: PathId, caller: Writer, db: DbSession,
              settings: AppSettings) -> HostnameRead:
    """Start a new certificate order for the hostname."""
    return waf.retry_ssl(db, settings, caller, app_id, hostname_id)


@router.get("/{app_id}/versions", response_model=list[VersionRead], summary="List an app's versions")
def versions(app_id: PathId, caller: Reader, db: DbSession) -> list[VersionRead]:
    """Every version of the app's edge configuration, newest first."""
    return waf.versions(db, caller, app_id)


@router.post("/{app_id}/rollback", response_model=WafAppRead, summary="Roll back to a version")
def rollback(app_id: PathId, body: RollbackRequest, caller: Writer, db: DbSession,
             settings: AppSettings) -> WafAppRead:
    """Give the app an earlier version's configuration again (as a new version)."""
    return waf.rollback(db, settings, caller, app_id, body)


@router.get("/{app_id}/blocked", response_model=list[BlockRead], summary="List blocked requests")
def blocked(app_id: PathId, caller: Reader, db: DbSession,
            limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[BlockRead]:
    """The latest requests the app's rule set blocked, newest first."""
    return waf.blocked(db, caller, app_id, limit)
