"""Primary surface: Shield's per-address firewall at /api/shield/ips.

    GET    /api/shield/ips                       [IpRecord]: every address of the caller's servers
    GET    /api/shield/ips/{id}                  IpRecord + "rules": [Rule]
    POST   /api/shield/ips/{id}/rules            201 Rule: {"action", "protocol", "src_cidr", "dst_port"} and, as
                                                 extensions, "dst_port_end" (a range), "priority", and for an
                                                 allow rule "rate_limit" (per source and second) with
                                                 "rate_unit" ("connections", the default, or "packets")
    PUT    /api/shield/ips/{id}/rules/{ruleId}   Rule: the fields given replace the rule's
    DELETE /api/shield/ips/{id}/rules/{ruleId}   204
    PUT    /api/shield/ips/{id}/policy           IpRecord + rules: {"default_in", "default_out"}

IpRecord = {"id" (the IP record id), "ip", "version", "instance_id", "instance_name", "rdns", "rules_count",
"policy": {"default_in", "default_out"}, "status" ("active", "pending" until the server's node enforces the
latest change, "error" with "error" saying why)}; Rule = {"id", "priority" (lowest decides first), "action",
"protocol" ("tcp", "udp", "icmp" as an extension, "any"), "src_cidr", "dst_port", "dst_port_end", "rate_limit",
"rate_unit", "status",
"created_at", "updated_at", "hits": {"packets", "bytes"}}; the profile also gives "policy_hits". Hits are
what the node's kernel counted since it last wrote the address's table, given while the node enforces the
latest change and answers (null otherwise). Rules filter inbound traffic; replies to allowed traffic always
pass. Bad CIDRs, ports and protocols are 422; a duplicate rule or one past the limit per address (500) 409;
another project's address 404. Scopes as the reference assigns them: shield:read to read, shield:write to change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Response

from cloudlet.auth.caller import Caller
from cloudlet.kit.serial import IsoMillis
from cloudlet.shield import service as shield
from cloudlet.shield.schemas import IpProfileRead, IpRecordRead, PolicyUpdate, RuleCreate, RuleRead, RuleUpdate
from cloudlet.surfaces.deps import AppRuntime, AppSettings, DbSession, requires
from cloudlet.surfaces.params import PathId
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/api/shield", tags=["primary"])


class PrimaryRule(RuleRead):
    """A rule, its times in the primary surface's form."""

    created_at: IsoMillis
    updated_at: IsoMillis


class PrimaryIpProfile(IpProfileRead):
    """An IP record with its rules."""

    rules: Sequence[PrimaryRule]

Reader = Annotated[Caller, requires(Ability.SHIELD_READ)]
Writer = Annotated[Caller, requires(Ability.SHIELD_WRITE)]


@router.get("/ips", response_model=list[IpRecordRead], summary="List IP records")
def list_ips(caller: Reader, db: DbSession) -> list[IpRecordRead]:
    """Every address of the caller's servers, with rule counts, policy and push state."""
    return shield.list_ips(db, caller)


@router.get("/ips/{ip_id}", response_model=PrimaryIpProfile, summary="Get an IP record")
def get_ip(ip_id: PathId, caller: Reader, db: DbSession, runtime: AppRuntime) -> IpProfileRead:
    """One address with its rules and policy, and what each matched."""
    return shield.get_ip(db, runtime.drivers, caller, ip_id)


@router.post("/ips/{ip_id}/rules", response_model=PrimaryRule, status_code=201, summary="Add a rule")
def add_rule(ip_id: PathId, body: RuleCreate, caller: Writer, db: DbSession, settings: AppSettings) -> RuleRead:
    """Add an inbound rule; it shows `pending` until the server's node enforces it."""
    return shield.add_rule(db, settings, caller, ip_id, body)


@router.put("/ips/{ip_id}/rules/{rule_id}", response_model=PrimaryRule, summary="Update a rule")
def update_rule(ip_id: PathId, rule_id: PathId, body: RuleUpdate, caller: Writer, db: DbSession) -> RuleRead:
    """Change a rule."""
    return shield.update_rule(db, caller, ip_id, rule_id, body)


@router.delete("/ips/{ip_id}/rules/{rule_id}", status_code=204, summary="Delete a rule")
def delete_rule(ip_id: PathId, rule_id: PathId, caller: Writer, db: DbSession) -> Response:
    """Remove a rule."""
    shield.delete_rule(db, caller, ip_id, rule_id)
    return Response(status_code=204)


@router.put("/ips/{ip_id}/policy", response_model=PrimaryIpProfile, summary="Set the default policies")
def set_policy(ip_id: PathId, body: PolicyUpdate, caller: Writer, db: DbSession) -> IpProfileRead:
    """Set default_in and default_out."""
    return shield.set_policy(db, caller, ip_id, body)
