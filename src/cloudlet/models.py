"""Every table, imported in one place so Alembic and tests see the whole schema."""

from cloudlet.actions.models import Action, ActionTask
from cloudlet.agent.models import AgentConversation, AgentMessage, TelegramCursor, TelegramLink
from cloudlet.alerts.models import Alert, AlertRule
from cloudlet.audit.models import AuditEntry
from cloudlet.auth.models import PasswordReset, RefreshToken, SystemFlag, User
from cloudlet.backups.models import Backup, Snapshot
from cloudlet.billing.models import ExchangeRate, LedgerEntry, ProjectPrice, Subscription, Wallet
from cloudlet.catalog.models import (
    BillingCycle,
    OsTemplate,
    Plan,
    PlanCategory,
    Region,
)
from cloudlet.edge.models import WafApp, WafBlock, WafChallenge, WafHostname, WafVersion
from cloudlet.events.models import Event
from cloudlet.githooks.models import WebhookToken
from cloudlet.images.models import Image
from cloudlet.instances.console_tickets import ConsoleTicket
from cloudlet.instances.models import Instance, SshKey
from cloudlet.integrations.models import Integration, IntegrationCursor, IntegrationDelivery
from cloudlet.kit.db import Base
from cloudlet.mail.models import OutboxMessage
from cloudlet.metrics.models import InstanceCounters, MetricPoint
from cloudlet.networking.models import IpAllocation, IpPool, ReverseDns
from cloudlet.nodes.models import Node, NodeFirewallRule, NodeRegistrationToken, NodeReservation
from cloudlet.preferences.models import UserPreferences
from cloudlet.projects.models import Invitation, MemberPermission, Membership, Project
from cloudlet.shield.models import AddressFirewallRow, FirewallRule
from cloudlet.sshca.models import SshCaKey, SshCertificate
from cloudlet.surfaces.idempotency import IdempotencyRecord
from cloudlet.tokens.models import ApiToken, TokenUsage
from cloudlet.webhooks.models import WebhookDelivery

__all__ = [
    "Action",
    "ActionTask",
    "AddressFirewallRow",
    "AgentConversation",
    "AgentMessage",
    "Alert",
    "AlertRule",
    "ApiToken",
    "AuditEntry",
    "Backup",
    "Base",
    "BillingCycle",
    "ConsoleTicket",
    "Event",
    "ExchangeRate",
    "FirewallRule",
    "IdempotencyRecord",
    "Image",
    "Instance",
    "InstanceCounters",
    "Integration",
    "IntegrationCursor",
    "IntegrationDelivery",
    "Invitation",
    "IpAllocation",
    "IpPool",
    "LedgerEntry",
    "MemberPermission",
    "Membership",
    "MetricPoint",
    "Node",
    "NodeFirewallRule",
    "NodeRegistrationToken",
    "NodeReservation",
    "OsTemplate",
    "OutboxMessage",
    "PasswordReset",
    "Plan",
    "PlanCategory",
    "Project",
    "ProjectPrice",
    "RefreshToken",
    "Region",
    "ReverseDns",
    "Snapshot",
    "SshCaKey",
    "SshCertificate",
    "SshKey",
    "Subscription",
    "SystemFlag",
    "TelegramCursor",
    "TelegramLink",
    "TokenUsage",
    "User",
    "UserPreferences",
    "WafApp",
    "WafBlock",
    "WafChallenge",
    "WafHostname",
    "WafVersion",
    "Wallet",
    "WebhookDelivery",
    "WebhookToken",
]
