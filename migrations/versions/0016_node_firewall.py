"""node firewall: the rules of each node's own inbound firewall

Revision ID: 0016
Revises: 0004
Create Date: 2026-12-07 08:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cloudlet.kit.db

revision: str = '0016'
down_revision: str | None = '0004'  # the nodes branch
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('node_firewall_rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('node_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.Enum('allow', 'block', name='firewallaction', native_enum=False, length=20), nullable=False),
    sa.Column('protocol', sa.Enum('tcp', 'udp', 'icmp', 'any', name='firewallprotocol', native_enum=False, length=20), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=True),
    sa.Column('port_from', sa.Integer(), nullable=True),
    sa.Column('port_to', sa.Integer(), nullable=True),
    sa.Column('comment', sa.String(length=255), nullable=False),
    sa.Column('created_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('port_from IS NULL OR (port_from >= 1 AND port_to >= port_from AND port_to <= 65535)', name=op.f('ck_node_firewall_rules_port_range')),
    sa.ForeignKeyConstraint(['node_id'], ['nodes.id'], name=op.f('fk_node_firewall_rules_node_id_nodes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_node_firewall_rules'))
    )
    with op.batch_alter_table('node_firewall_rules', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_node_firewall_rules_node_id'), ['node_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('node_firewall_rules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_node_firewall_rules_node_id'))

    op.drop_table('node_firewall_rules')
