"""consoles: one-time tickets of VNC console links (digests only)

Revision ID: 0009
Revises: 0007
Create Date: 2026-11-25 16:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cloudlet.kit.db

revision: str = '0009'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('console_tickets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('port', sa.Integer(), nullable=False),
    sa.Column('expires_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['instance_id'], ['instances.id'], name=op.f('fk_console_tickets_instance_id_instances'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_console_tickets_user_id_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_tickets')),
    sa.UniqueConstraint('digest', name=op.f('uq_console_tickets_digest'))
    )
    with op.batch_alter_table('console_tickets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_console_tickets_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_console_tickets_instance_id'), ['instance_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('console_tickets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_console_tickets_instance_id'))
        batch_op.drop_index(batch_op.f('ix_console_tickets_expires_at'))

    op.drop_table('console_tickets')
