"""Instances and the SSH keys a project keeps for them.

An instance's `status` is its stable state; while an action runs, `locked_action_id` names it and
any other action is refused (409). Every change to the guest is an Action (actions/models.py) carried
out by a durable workflow, which records each task's progress so every surface can show it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from cloudlet.actions.models import Action as Action  # re-exported: read where instances are read
from cloudlet.actions.models import ActionStatus as ActionStatus
from cloudlet.actions.models import ActionTask as ActionTask
from cloudlet.actions.models import TaskStatus as TaskStatus
from cloudlet.kit import clock
from cloudlet.kit.db import Base, UTCDateTime, enum_column


class InstanceStatus(StrEnum):
    """Where an instance stands: stable states, and the transitional ones an action shows while it runs.

    `unknown` is what the reconciler says while the instance's node does not answer.
    """

    PROVISIONING = "provisioning"
    RUNNING = "running"
    STOPPED = "stopped"
    STARTING = "starting"
    STOPPING = "stopping"
    RESTARTING = "restarting"
    SUSPENDED = "suspended"
    ERROR = "error"
    UNKNOWN = "unknown"
    DELETING = "deleting"
    DELETED = "deleted"


class Instance(Base):
    """A virtual server of a project: what was asked for, where it runs, and how it is paid for."""

    __tablename__ = "instances"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)  # the public id (CyberPanel uses `id`)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="RESTRICT"), index=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(200))
    hostname: Mapped[str] = mapped_column(String(253))
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="RESTRICT"))
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id", ondelete="RESTRICT"))
    template_id: Mapped[int | None] = mapped_column(ForeignKey("os_templates.id", ondelete="SET NULL"))
    os_name: Mapped[str] = mapped_column(String(200), default="")
    image: Mapped[str] = mapped_column(String(100))  # the base image's name on the node
    billing_cycle: Mapped[str] = mapped_column(String(20))
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mib: Mapped[int] = mapped_column(Integer)
    disk_gib: Mapped[int] = mapped_column(Integer)
    guest_name: Mapped[str] = mapped_column(String(63), unique=True)  # the name the node knows it by
    node_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id", ondelete="SET NULL"), index=True)
    # the SSH CA's trust files (digest) the running guest last got through its agent
    ssh_trust_digest: Mapped[str | None] = mapped_column(String(64))
    reservation_id: Mapped[int | None] = mapped_column(Integer)
    ipv4: Mapped[str | None] = mapped_column(String(64))
    ipv6: Mapped[str | None] = mapped_column(String(64))
    root_password: Mapped[str | None] = mapped_column(String(1000))  # sealed (kit.secretbox)
    ssh_keys: Mapped[list[str]] = mapped_column(JSON, default=list)
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    webhook_secret: Mapped[str | None] = mapped_column(String(1000))  # sealed
    status: Mapped[InstanceStatus] = mapped_column(enum_column(InstanceStatus), index=True)
    status_reason: Mapped[str] = mapped_column(String(2000), default="")
    locked_action_id: Mapped[int | None] = mapped_column(Integer)
    # its plan's monthly transfer is used up: its NIC is held at CLOUDLET_TRANSFER_THROTTLE_MBIT until then (the
    # next month's start), when the plan's cap comes back (shield/bandwidth.py)
    throttled_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delete_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)  # end_of_cycle deletion
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)
    provisioned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SshKey(Base):
    """A public key a project keeps to put into its servers at build time."""

    __tablename__ = "ssh_keys"
    __table_args__ = (UniqueConstraint("project_id", "fingerprint"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    public_key: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(100))  # SHA256:base64, as ssh-keygen -l prints
    # at most one per project: what a new server gets when its order names no key
    is_default: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
