"""backups: snapshots of instances (recorded beside the node's own) and backups in the backup store

Revision ID: 0010
Revises: 0007
Create Date: 2026-11-25 16:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cloudlet.kit.db

revision: str = '0010'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUS = sa.Enum('creating', 'ready', 'failed', name='copystatus', native_enum=False, length=20)


def upgrade() -> None:
    op.create_table('instance_snapshots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=False),
    sa.Column('include_ram', sa.Boolean(), nullable=False),
    sa.Column('status', STATUS, nullable=False),
    sa.Column('created_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['instance_id'], ['instances.id'], name=op.f('fk_instance_snapshots_instance_id_instances'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instance_snapshots')),
    sa.UniqueConstraint('instance_id', 'name', name=op.f('uq_instance_snapshots_instance_id'))
    )
    with op.batch_alter_table('instance_snapshots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_instance_snapshots_instance_id'), ['instance_id'], unique=False)

    op.create_table('instance_backups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.Column('status', STATUS, nullable=False),
    sa.Column('store_key', sa.String(length=300), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=True),
    sa.Column('checksum_sha256', sa.String(length=64), nullable=True),
    sa.Column('error', sa.String(length=2000), nullable=False),
    sa.Column('created_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('completed_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['instance_id'], ['instances.id'], name=op.f('fk_instance_backups_instance_id_instances'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instance_backups')),
    sa.UniqueConstraint('uuid', name=op.f('uq_instance_backups_uuid'))
    )
    with op.batch_alter_table('instance_backups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_instance_backups_instance_id'), ['instance_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('instance_backups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_instance_backups_instance_id'))
    op.drop_table('instance_backups')
    with op.batch_alter_table('instance_snapshots', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_instance_snapshots_instance_id'))
    op.drop_table('instance_snapshots')
