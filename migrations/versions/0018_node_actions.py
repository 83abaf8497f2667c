"""node actions: an action may work on a node (a firewall push) rather than hold an instance

Revision ID: 0018
Revises: 0015
Create Date: 2026-12-07 11:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0018'
down_revision: str | None = '0015'  # the shield branch, whose pushes are these actions
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = '0004'  # nodes


def upgrade() -> None:
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.alter_column('instance_id', existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column('node_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_actions_node_id'), ['node_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_actions_node_id_nodes'), 'nodes', ['node_id'], ['id'],
                                    ondelete='CASCADE')


def downgrade() -> None:
    op.execute("DELETE FROM actions WHERE instance_id IS NULL")
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_actions_node_id_nodes'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_actions_node_id'))
        batch_op.drop_column('node_id')
        batch_op.alter_column('instance_id', existing_type=sa.Integer(), nullable=False)
