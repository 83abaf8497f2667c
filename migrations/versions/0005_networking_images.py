"""networking (reverse DNS of allocated addresses) and the images registry

Revision ID: 0005
Revises: 0001
Create Date: 2026-11-25 12:50:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cloudlet.kit.db

revision: str = '0005'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('images',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('format', sa.Enum('qcow2', name='imageformat', native_enum=False, length=20), nullable=False),
    sa.Column('source', sa.Enum('built', 'imported', name='imagesource', native_enum=False, length=20),
              nullable=False),
    sa.Column('virtual_size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('file_size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('checksum', sa.String(length=80), nullable=False),
    sa.Column('volume', sa.String(length=255), nullable=False),
    sa.Column('status', sa.Enum('available', 'disabled', name='imagestatus', native_enum=False, length=20),
              nullable=False),
    sa.Column('created_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_images')),
    sa.UniqueConstraint('name', name=op.f('uq_images_name'))
    )
    op.create_table('ip_reverse_dns',
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=253), nullable=False),
    sa.Column('updated_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('address', name=op.f('pk_ip_reverse_dns'))
    )


def downgrade() -> None:
    op.drop_table('ip_reverse_dns')
    op.drop_table('images')
