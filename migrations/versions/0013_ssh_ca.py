"""ssh ca: CA keys, certificates, and the trust each running guest holds

Revision ID: 0013
Revises: 0007
Create Date: 2026-12-07 05:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cloudlet.kit.db

revision: str = '0013'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('ssh_ca_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('algorithm', sa.String(length=32), nullable=False),
    sa.Column('public_key', sa.Text(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('sealed_private_key', sa.Text(), nullable=False),
    sa.Column('state', sa.Enum('active', 'trusted', 'retired', name='cakeystate', native_enum=False, length=20), nullable=False),
    sa.Column('active_slot', sa.Integer(), nullable=True),
    sa.Column('created_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('activated_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('retired_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ssh_ca_keys')),
    sa.UniqueConstraint('active_slot', name=op.f('uq_ssh_ca_keys_active_slot')),
    sa.UniqueConstraint('uuid', name=op.f('uq_ssh_ca_keys_uuid'))
    )
    op.create_table('ssh_certificates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('ca_key_id', sa.Integer(), nullable=False),
    sa.Column('serial', sa.BigInteger(), nullable=False),
    sa.Column('key_id', sa.String(length=200), nullable=False),
    sa.Column('principals', sa.JSON(), nullable=False),
    sa.Column('public_key_fingerprint', sa.String(length=64), nullable=False),
    sa.Column('certificate', sa.Text(), nullable=False),
    sa.Column('valid_after', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('valid_before', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['ca_key_id'], ['ssh_ca_keys.id'], name=op.f('fk_ssh_certificates_ca_key_id_ssh_ca_keys'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_ssh_certificates_created_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_ssh_certificates_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ssh_certificates')),
    sa.UniqueConstraint('serial', name=op.f('uq_ssh_certificates_serial')),
    sa.UniqueConstraint('uuid', name=op.f('uq_ssh_certificates_uuid'))
    )
    with op.batch_alter_table('ssh_certificates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ssh_certificates_project_id'), ['project_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ssh_certificates_revoked_at'), ['revoked_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_ssh_certificates_valid_before'), ['valid_before'], unique=False)

    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ssh_trust_digest', sa.String(length=64), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_column('ssh_trust_digest')

    with op.batch_alter_table('ssh_certificates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ssh_certificates_valid_before'))
        batch_op.drop_index(batch_op.f('ix_ssh_certificates_revoked_at'))
        batch_op.drop_index(batch_op.f('ix_ssh_certificates_project_id'))

    op.drop_table('ssh_certificates')
    op.drop_table('ssh_ca_keys')
