"""Shardlyn surface: a provisioned node's own firewall (administrators only, like every /v1/nodes route).

    GET    /v1/nodes/{id}/firewall/rules   {"rules": [...]}, in the order they decide
    POST   /v1/nodes/{id}/firewall/rules   201, the rule; the node enforces it within moments (a push after the
                                           request commits, and a reconciler that repairs a table changed
                                           behind Cloudlet's back)
    DELETE /v1/nodes/{id}/firewall/rules   204; the rule named by ?rule_id=ID or by a body {"id": ID} (the
                                           path has no rule id)

Shardlyn's reference names the routes but not their bodies; this follows what Hetzner's and DigitalOcean's
firewalls take. A rule: {"id", "action": "allow" | "block", "protocol": "tcp" | "udp" | "icmp" | "any"
(default any), "source": a CIDR, IPv4 or IPv6 (null or left out: any source), "port" and "port_end" (a range,
tcp and udp only; left out: any port), "comment", "created_at"}.

The rules filter what reaches the node itself (its input hook), not its guests (Shield filters their
addresses). Loopback, replies, IPv6 neighbour discovery and the control plane's addresses on the node's
management ports pass before any rule; whatever no rule matches passes too: a firewall that dropped by
default would lock the operator out of the node. An operator who wants to deny by default adds a final block
rule. Bad input is a 400; a block rule that would cut the control plane off from the node is a 409 naming the
address and port it would cut (for the local node, loopback, which the control plane uses for libvirt's socket,
its database, Redis and the API); a rule for a remote node is a 409 too, since only its node agent (not built
yet) could write its kernel. See cloudlet.nodes.firewall.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from cloudlet.kit.errors import Invalid
from cloudlet.kit.ids import MAX_ID
from cloudlet.nodes import firewall
from cloudlet.nodes.schemas import NodeFirewallRuleCreate, NodeFirewallRuleRead
from cloudlet.surfaces.deps import AdminCaller, AppSettings, DbSession
from cloudlet.surfaces.params import PathId

router = APIRouter(tags=["shardlyn"])


class NodeFirewallRuleList(BaseModel):
    """A node's own firewall rules, in the order they decide."""

    rules: list[NodeFirewallRuleRead]


class NodeFirewallRuleRef(BaseModel):
    """The rule a DELETE removes, named in its body."""

    model_config = ConfigDict(extra="forbid")

    id: int = Field(ge=1, le=MAX_ID)


RuleIdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID, description="The rule to remove.")]


@router.get("/v1/nodes/{node_id}/firewall/rules", response_model=NodeFirewallRuleList, summary="List rules")
def list_node_firewall_rules(node_id: PathId, caller: AdminCaller, db: DbSession) -> NodeFirewallRuleList:
    """The node's own firewall rules."""
    return NodeFirewallRuleList(rules=firewall.list_rules(db, node_id))


@router.post("/v1/nodes/{node_id}/firewall/rules", status_code=201, response_model=NodeFirewallRuleRead,
             summary="Add rule")
def add_node_firewall_rule(node_id: PathId, body: NodeFirewallRuleCreate, caller: AdminCaller, db: DbSession,
                           settings: AppSettings) -> NodeFirewallRuleRead:
    """Add a rule after the node's others."""
    return firewall.add_rule(db, settings, node_id, body)


@router.delete("/v1/nodes/{node_id}/firewall/rules", status_code=204, summary="Remove rule")
def remove_node_firewall_rule(node_id: PathId, caller: AdminCaller, db: DbSession, rule_id: RuleIdQuery = None,
                              body: Annotated[NodeFirewallRuleRef | None, Body()] = None) -> Response:
    """Remove the rule named by ?rule_id= or by the body's id."""
    named = {ident for ident in (rule_id, body.id if body is not None else None) if ident is not None}
    if len(named) != 1:
        raise Invalid("rule_id", "Name one rule: ?rule_id=ID or a body {\"id\": ID}." if not named
                      else "rule_id and the body's id name different rules.")
    firewall.remove_rule(db, node_id, named.pop())
    return Response(status_code=204)
