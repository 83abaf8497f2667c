"""images: what an image is (its OS family) and what it can do (guest agent, SSH, cloud-init)

Revision ID: 0012
Revises: 0005
Create Date: 2026-12-07 02:35:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | None = '0005'  # the images branch
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('os_family', sa.String(length=32), server_default='linux', nullable=False))
        # capability names, e.g. ["cloud_init", "guest_agent", "ssh"]
        batch_op.add_column(sa.Column('capabilities', sa.JSON(), server_default=sa.text("'[]'"), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_column('capabilities')
        batch_op.drop_column('os_family')
