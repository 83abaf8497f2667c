"""shield: address firewalls and their rules

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 06:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cloudlet.kit.db

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('address_firewalls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('allocation_id', sa.Integer(), nullable=False),
    sa.Column('default_in', sa.Enum('allow', 'block', name='firewallaction', native_enum=False, length=20), nullable=False),
    sa.Column('default_out', sa.Enum('allow', 'block', name='firewallaction', native_enum=False, length=20), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('applied_revision', sa.Integer(), nullable=False),
    sa.Column('push_error', sa.Text(), nullable=False),
    sa.Column('pushed_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['allocation_id'], ['ip_allocations.id'], name=op.f('fk_address_firewalls_allocation_id_ip_allocations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_address_firewalls')),
    sa.UniqueConstraint('allocation_id', name=op.f('uq_address_firewalls_allocation_id'))
    )
    op.create_table('firewall_rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('firewall_id', sa.Integer(), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('action', sa.Enum('allow', 'block', name='firewallaction', native_enum=False, length=20), nullable=False),
    sa.Column('protocol', sa.Enum('tcp', 'udp', 'icmp', 'any', name='firewallprotocol', native_enum=False, length=20), nullable=False),
    sa.Column('src_cidr', sa.String(length=64), nullable=False),
    sa.Column('port_from', sa.Integer(), nullable=True),
    sa.Column('port_to', sa.Integer(), nullable=True),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('created_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['firewall_id'], ['address_firewalls.id'], name=op.f('fk_firewall_rules_firewall_id_address_firewalls'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_firewall_rules'))
    )
    with op.batch_alter_table('firewall_rules', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_firewall_rules_firewall_id'), ['firewall_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('firewall_rules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_firewall_rules_firewall_id'))

    op.drop_table('firewall_rules')
    op.drop_table('address_firewalls')
