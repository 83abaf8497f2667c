"""nodes: hypervisor nodes, placement reservations, node registration tokens

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-25 12:47:33.442452
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cloudlet.kit.db

revision: str = '0004'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = '0002'  # nodes.region_id references regions


def upgrade() -> None:
    op.create_table('nodes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('uri', sa.String(length=500), nullable=False),
    sa.Column('region_id', sa.Integer(), nullable=False),
    sa.Column('vcpu_total', sa.Integer(), nullable=False),
    sa.Column('memory_mib_total', sa.Integer(), nullable=False),
    sa.Column('disk_gib_total', sa.Integer(), nullable=False),
    sa.Column('cpu_ratio', sa.Numeric(precision=6, scale=2), nullable=False),
    sa.Column('memory_ratio', sa.Numeric(precision=6, scale=2), nullable=False),
    sa.Column('disk_ratio', sa.Numeric(precision=6, scale=2), nullable=False),
    sa.Column('vcpu_reserved', sa.Integer(), nullable=False),
    sa.Column('memory_mib_reserved', sa.Integer(), nullable=False),
    sa.Column('disk_gib_reserved', sa.Integer(), nullable=False),
    sa.Column('vcpu_used', sa.Integer(), nullable=False),
    sa.Column('memory_mib_used', sa.Integer(), nullable=False),
    sa.Column('disk_gib_used', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('cordoned', sa.Boolean(), nullable=False),
    sa.Column('status_reason', sa.String(length=500), nullable=False),
    sa.Column('last_heartbeat_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('inventory', sa.JSON(), nullable=False),
    sa.Column('inventory_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('cpu_ratio > 0 AND memory_ratio > 0 AND disk_ratio > 0', name=op.f('ck_nodes_ratios_positive')),
    sa.CheckConstraint('vcpu_total >= 0 AND memory_mib_total >= 0 AND disk_gib_total >= 0', name=op.f('ck_nodes_capacity')),
    sa.CheckConstraint('vcpu_used >= 0 AND memory_mib_used >= 0 AND disk_gib_used >= 0', name=op.f('ck_nodes_used')),
    sa.ForeignKeyConstraint(['region_id'], ['regions.id'], name=op.f('fk_nodes_region_id_regions'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_nodes')),
    sa.UniqueConstraint('name', name=op.f('uq_nodes_name'))
    )
    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_nodes_region_id'), ['region_id'], unique=False)

    op.create_table('node_registration_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_digest', sa.String(length=64), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('expires_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('node_id', sa.Integer(), nullable=True),
    sa.Column('created_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_node_registration_tokens_created_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['node_id'], ['nodes.id'], name=op.f('fk_node_registration_tokens_node_id_nodes'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_node_registration_tokens')),
    sa.UniqueConstraint('token_digest', name=op.f('uq_node_registration_tokens_token_digest'))
    )
    op.create_table('node_reservations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('node_id', sa.Integer(), nullable=False),
    sa.Column('vcpu', sa.Integer(), nullable=False),
    sa.Column('memory_mib', sa.Integer(), nullable=False),
    sa.Column('disk_gib', sa.Integer(), nullable=False),
    sa.Column('holder', sa.String(length=200), nullable=False),
    sa.Column('created_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('released_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint('vcpu > 0 AND memory_mib > 0 AND disk_gib > 0', name=op.f('ck_node_reservations_positive')),
    sa.ForeignKeyConstraint(['node_id'], ['nodes.id'], name=op.f('fk_node_reservations_node_id_nodes'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_node_reservations'))
    )
    with op.batch_alter_table('node_reservations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_node_reservations_node_id'), ['node_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('node_reservations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_node_reservations_node_id'))

    op.drop_table('node_reservations')
    op.drop_table('node_registration_tokens')
    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_nodes_region_id'))

    op.drop_table('nodes')
