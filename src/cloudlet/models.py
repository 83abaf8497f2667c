"""Every table, imported in one place so Alembic and tests see the whole schema."""

from cloudlet.audit.models import AuditEntry
from cloudlet.auth.models import PasswordReset, RefreshToken, SystemFlag, User
from cloudlet.catalog.models import (
    BillingCycle,
    ExchangeRate,
    IpAllocation,
    IpPool,
    OsTemplate,
    Plan,
    PlanCategory,
    ProjectPrice,
    Region,
)
from cloudlet.kit.db import Base
from cloudlet.mail.models import OutboxMessage
from cloudlet.projects.models import Invitation, MemberPermission, Membership, Project
from cloudlet.tokens.models import ApiToken, TokenUsage

__all__ = [
    "ApiToken",
    "AuditEntry",
    "Base",
    "BillingCycle",
    "ExchangeRate",
    "Invitation",
    "IpAllocation",
    "IpPool",
    "MemberPermission",
    "Membership",
    "OsTemplate",
    "OutboxMessage",
    "PasswordReset",
    "Plan",
    "PlanCategory",
    "Project",
    "ProjectPrice",
    "RefreshToken",
    "Region",
    "SystemFlag",
    "TokenUsage",
    "User",
]
