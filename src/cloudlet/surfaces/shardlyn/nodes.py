"""Shardlyn surface: hypervisor nodes (operator objects, so every route but self-registration is AdminCaller).

    GET    /v1/nodes                       {"nodes": [...]}
    POST   /v1/nodes                       201, a node added by an administrator
    POST   /v1/nodes/register-token        201, {"id", "token", "expires_at"}: single use, shown once
    POST   /v1/nodes/register              201, a node registering itself: the body of POST /v1/nodes
                                           plus "registration_token" (no other credential; 401 when the
                                           token is unknown, used or expired)
    GET    /v1/nodes/{id}                  the node
    PUT    /v1/nodes/{id}                  change name, uri, region, capacity, overcommit, reserved
    DELETE /v1/nodes/{id}                  204; 409 while guests are placed on it
    POST   /v1/nodes/{id}/cordon           no new guests on it; POST .../uncordon undoes it
    GET    /v1/nodes/{id}/inventory        what the last heartbeat read ("/system", "/network", "/disks")

A node body: {"name", "uri": "qemu:///system" | "qemu+ssh://host/system" | "qemu+tls://host/system",
"region": code or id, "capacity": {"vcpu", "memory_mib", "disk_gib"}, "overcommit": {"cpu", "memory",
"disk"} (default 4/1/1), "reserved": {...} held back for the host}. A new node is "unreachable" until
its first heartbeat answers; `status` is unreachable, else cordoned, else ready.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel

from cloudlet.nodes import service as nodes
from cloudlet.nodes.schemas import (
    DiskInventory,
    NetworkInterface,
    NodeCreate,
    NodeInventory,
    NodeRead,
    NodeRegister,
    NodeUpdate,
    RegistrationTokenCreate,
    RegistrationTokenRead,
    SystemInventory,
)
from cloudlet.surfaces.deps import AdminCaller, DbSession
from cloudlet.surfaces.params import PathId

router = APIRouter(tags=["shardlyn"])


class NodeList(BaseModel):
    """Nodes."""

    nodes: list[NodeRead]


class InterfaceList(BaseModel):
    """A node's network interfaces."""

    interfaces: list[NetworkInterface]


class DiskList(BaseModel):
    """A node's pool filesystem and base images."""

    disks: list[DiskInventory]


@router.get("/v1/nodes", response_model=NodeList, summary="List nodes")
def list_nodes(caller: AdminCaller, db: DbSession) -> NodeList:
    """Every node, oldest first."""
    return NodeList(nodes=nodes.list_nodes(db))


@router.post("/v1/nodes", status_code=201, response_model=NodeRead, summary="Create node")
def create_node(body: NodeCreate, caller: AdminCaller, db: DbSession) -> NodeRead:
    """Add a node by hand."""
    return nodes.create_node(db, body)


@router.post("/v1/nodes/register-token", status_code=201, response_model=RegistrationTokenRead,
             summary="Create registration token")
def create_registration_token(caller: AdminCaller, db: DbSession,
                              body: RegistrationTokenCreate | None = None) -> RegistrationTokenRead:
    """A single-use token a new node presents to POST /v1/nodes/register (shown only here)."""
    return nodes.create_registration_token(db, caller.user_id, body)


@router.post("/v1/nodes/register", status_code=201, response_model=NodeRead, summary="Register node")
def register_node(body: NodeRegister, db: DbSession) -> NodeRead:
    """A node adds itself with a registration token (public: the token is the credential)."""
    return nodes.register_node(db, body)


@router.get("/v1/nodes/{node_id}", response_model=NodeRead, summary="Get node details")
def get_node(node_id: PathId, caller: AdminCaller, db: DbSession) -> NodeRead:
    """One node."""
    return nodes.get_node(db, node_id)


@router.put("/v1/nodes/{node_id}", response_model=NodeRead, summary="Update node")
def update_node(node_id: PathId, body: NodeUpdate, caller: AdminCaller, db: DbSession) -> NodeRead:
    """Change the fields sent."""
    return nodes.update_node(db, node_id, body)


@router.delete("/v1/nodes/{node_id}", status_code=204, summary="Delete node")
def delete_node(node_id: PathId, caller: AdminCaller, db: DbSession) -> Response:
    """Remove a node with nothing placed on it."""
    nodes.delete_node(db, node_id)
    return Response(status_code=204)


@router.post("/v1/nodes/{node_id}/cordon", response_model=NodeRead, summary="Disable scheduling")
def cordon_node(node_id: PathId, caller: AdminCaller, db: DbSession) -> NodeRead:
    """Place no new guests on the node."""
    return nodes.cordon(db, node_id)


@router.post("/v1/nodes/{node_id}/uncordon", response_model=NodeRead, summary="Re-enable scheduling")
def uncordon_node(node_id: PathId, caller: AdminCaller, db: DbSession) -> NodeRead:
    """Place guests on the node again."""
    return nodes.uncordon(db, node_id)


@router.get("/v1/nodes/{node_id}/inventory", response_model=NodeInventory, summary="Full inventory")
def node_inventory(node_id: PathId, caller: AdminCaller, db: DbSession) -> NodeInventory:
    """Everything the last heartbeat read from the node."""
    return nodes.inventory(db, node_id)


@router.get("/v1/nodes/{node_id}/inventory/system", response_model=SystemInventory, summary="System info")
def node_inventory_system(node_id: PathId, caller: AdminCaller, db: DbSession) -> SystemInventory:
    """The node's host, OS, CPU and memory."""
    return nodes.inventory(db, node_id).system


@router.get("/v1/nodes/{node_id}/inventory/network", response_model=InterfaceList, summary="Network interfaces")
def node_inventory_network(node_id: PathId, caller: AdminCaller, db: DbSession) -> InterfaceList:
    """The node's network interfaces."""
    return InterfaceList(interfaces=nodes.inventory(db, node_id).network)


@router.get("/v1/nodes/{node_id}/inventory/disks", response_model=DiskList, summary="Disk info")
def node_inventory_disks(node_id: PathId, caller: AdminCaller, db: DbSession) -> DiskList:
    """The node's pool filesystem and its base images."""
    return DiskList(disks=nodes.inventory(db, node_id).disks)
