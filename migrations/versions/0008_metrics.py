"""metrics: instances' history points and the last counters read from each guest

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 16:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cloudlet.kit.db

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('instance_counters',
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.Column('read_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sampled_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('running', sa.Boolean(), nullable=False),
    sa.Column('running_since', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('cpu_time_ns', sa.BigInteger(), nullable=False),
    sa.Column('disk_read_bytes', sa.BigInteger(), nullable=False),
    sa.Column('disk_write_bytes', sa.BigInteger(), nullable=False),
    sa.Column('net_rx_bytes', sa.BigInteger(), nullable=False),
    sa.Column('net_tx_bytes', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['instance_id'], ['instances.id'], name=op.f('fk_instance_counters_instance_id_instances'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('instance_id', name=op.f('pk_instance_counters'))
    )
    with op.batch_alter_table('instance_counters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_instance_counters_read_at'), ['read_at'], unique=False)

    op.create_table('metric_points',
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.Column('resolution', sa.Enum('raw', '5m', name='resolution', native_enum=False, length=8), nullable=False),
    sa.Column('at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.Column('samples', sa.Integer(), nullable=False),
    sa.Column('cpu_percent', sa.Float(), nullable=False),
    sa.Column('vcpus', sa.Integer(), nullable=False),
    sa.Column('memory_mib', sa.Integer(), nullable=False),
    sa.Column('memory_used_mib', sa.Integer(), nullable=True),
    sa.Column('disk_used_bytes', sa.BigInteger(), nullable=False),
    sa.Column('disk_total_bytes', sa.BigInteger(), nullable=False),
    sa.Column('disk_read_bps', sa.Float(), nullable=False),
    sa.Column('disk_write_bps', sa.Float(), nullable=False),
    sa.Column('net_rx_bps', sa.Float(), nullable=False),
    sa.Column('net_tx_bps', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['instance_id'], ['instances.id'], name=op.f('fk_metric_points_instance_id_instances'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('instance_id', 'resolution', 'at', name=op.f('pk_metric_points'))
    )
    with op.batch_alter_table('metric_points', schema=None) as batch_op:
        batch_op.create_index('ix_metric_points_resolution_at', ['resolution', 'at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('metric_points', schema=None) as batch_op:
        batch_op.drop_index('ix_metric_points_resolution_at')
    op.drop_table('metric_points')
    with op.batch_alter_table('instance_counters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_instance_counters_read_at'))
    op.drop_table('instance_counters')
