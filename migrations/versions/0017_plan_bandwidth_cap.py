"""plan bandwidth cap: plans' network cap in Mbit/s, each server's monthly transfer, and its transfer throttle

Revision ID: 0017
Revises: 0002
Create Date: 2026-12-08 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cloudlet.kit.db

revision: str = '0017'
down_revision: str | None = '0002'  # the catalog branch: plans
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = '0007'  # instances, which the transfer counts and the throttle belong to


def upgrade() -> None:
    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bandwidth_mbit', sa.Integer(), nullable=True))  # null: uncapped
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('throttled_until', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=True))
    op.create_table('monthly_transfer',
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('rx_bytes', sa.BigInteger(), nullable=False),
    sa.Column('tx_bytes', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['instance_id'], ['instances.id'], name=op.f('fk_monthly_transfer_instance_id_instances'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('instance_id', 'month', name=op.f('pk_monthly_transfer'))
    )


def downgrade() -> None:
    op.drop_table('monthly_transfer')
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_column('throttled_until')
    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.drop_column('bandwidth_mbit')
