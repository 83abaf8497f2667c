"""alerts: alert rules over what Cloudlet samples (a metric of an instance or a node, an operator, a threshold held
for a duration, a severity, how to notify and how often), and the alerts they open and resolve

Revision ID: 0021
Revises: 0001
Create Date: 2026-12-07 15:15:44.295132
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cloudlet.kit.db

revision: str = '0021'
down_revision: str | None = '0001'  # a branch of its own: alerts (rules and alerts belong to projects)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('alert_rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('target_type', sa.Enum('node', 'instance', name='targettype', native_enum=False, length=16), nullable=False),
    sa.Column('target_id', sa.String(length=64), nullable=False),
    sa.Column('metric', sa.Enum('cpu_usage', 'memory_usage', 'disk_read', 'disk_write', 'network_in', 'network_out', 'node_down', 'action_failures', name='metric', native_enum=False, length=32), nullable=False),
    sa.Column('operator', sa.Enum('gt', 'gte', 'lt', 'lte', name='operator', native_enum=False, length=8), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=False),
    sa.Column('duration_seconds', sa.Integer(), nullable=False),
    sa.Column('severity', sa.Enum('info', 'warn', 'critical', name='severity', native_enum=False, length=16), nullable=False),
    sa.Column('notify_in_app', sa.Boolean(), nullable=False),
    sa.Column('notify_email', sa.Boolean(), nullable=False),
    sa.Column('cooldown_seconds', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('last_notified_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_alert_rules_created_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_alert_rules_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_rules')),
    sa.UniqueConstraint('uuid', name=op.f('uq_alert_rules_uuid'))
    )
    with op.batch_alter_table('alert_rules', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alert_rules_enabled'), ['enabled'], unique=False)
        batch_op.create_index(batch_op.f('ix_alert_rules_project_id'), ['project_id'], unique=False)

    op.create_table('alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('rule_id', sa.Integer(), nullable=True),
    sa.Column('open_rule_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.Enum('open', 'resolved', name='alertstatus', native_enum=False, length=16), nullable=False),
    sa.Column('rule_name', sa.String(length=200), nullable=False),
    sa.Column('target_type', sa.Enum('node', 'instance', name='targettype', native_enum=False, length=16), nullable=False),
    sa.Column('target_id', sa.String(length=64), nullable=False),
    sa.Column('target_name', sa.String(length=200), nullable=False),
    sa.Column('metric', sa.Enum('cpu_usage', 'memory_usage', 'disk_read', 'disk_write', 'network_in', 'network_out', 'node_down', 'action_failures', name='metric', native_enum=False, length=32), nullable=False),
    sa.Column('operator', sa.Enum('gt', 'gte', 'lt', 'lte', name='operator', native_enum=False, length=8), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=False),
    sa.Column('duration_seconds', sa.Integer(), nullable=False),
    sa.Column('severity', sa.Enum('info', 'warn', 'critical', name='severity', native_enum=False, length=16), nullable=False),
    sa.Column('in_app', sa.Boolean(), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('message', sa.String(length=500), nullable=False),
    sa.Column('notified', sa.Boolean(), nullable=False),
    sa.Column('opened_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['acknowledged_by'], ['users.id'], name=op.f('fk_alerts_acknowledged_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['open_rule_id'], ['alert_rules.id'], name=op.f('fk_alerts_open_rule_id_alert_rules'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_alerts_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['rule_id'], ['alert_rules.id'], name=op.f('fk_alerts_rule_id_alert_rules'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts')),
    sa.UniqueConstraint('open_rule_id', name=op.f('uq_alerts_open_rule_id')),
    sa.UniqueConstraint('uuid', name=op.f('uq_alerts_uuid'))
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index('ix_alerts_project_id_id', ['project_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_alerts_rule_id'), ['rule_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alerts_rule_id'))
        batch_op.drop_index('ix_alerts_project_id_id')

    op.drop_table('alerts')
    with op.batch_alter_table('alert_rules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alert_rules_project_id'))
        batch_op.drop_index(batch_op.f('ix_alert_rules_enabled'))

    op.drop_table('alert_rules')
