"""waf apps: customers' apps behind the edge, their hostnames and certificates, versions and blocked requests

Revision ID: 0019
Revises: 0001
Create Date: 2026-12-07 11:16:30.114078
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cloudlet.kit.db

revision: str = '0019'
down_revision: str | None = '0001'  # a branch of its own: the edge (apps belong to projects)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('waf_apps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('edge_name', sa.String(length=253), nullable=False),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('origin_ip', sa.String(length=64), nullable=False),
    sa.Column('origin_port', sa.Integer(), nullable=False),
    sa.Column('waf_enabled', sa.Boolean(), nullable=False),
    sa.Column('paranoia', sa.Integer(), nullable=False),
    sa.Column('excluded_rules', sa.JSON(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('applied_version', sa.Integer(), nullable=False),
    sa.Column('edge_error', sa.Text(), nullable=False),
    sa.Column('requests', sa.BigInteger(), nullable=False),
    sa.Column('blocked', sa.BigInteger(), nullable=False),
    sa.Column('created_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_waf_apps_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_waf_apps')),
    sa.UniqueConstraint('edge_name', name=op.f('uq_waf_apps_edge_name'))
    )
    with op.batch_alter_table('waf_apps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_waf_apps_instance_uuid'), ['instance_uuid'], unique=False)
        batch_op.create_index(batch_op.f('ix_waf_apps_project_id'), ['project_id'], unique=False)

    op.create_table('waf_blocks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('app_id', sa.Integer(), nullable=False),
    sa.Column('at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('client', sa.String(length=64), nullable=False),
    sa.Column('rule_id', sa.Integer(), nullable=True),
    sa.Column('uri', sa.String(length=2000), nullable=False),
    sa.Column('message', sa.String(length=500), nullable=False),
    sa.ForeignKeyConstraint(['app_id'], ['waf_apps.id'], name=op.f('fk_waf_blocks_app_id_waf_apps'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_waf_blocks'))
    )
    with op.batch_alter_table('waf_blocks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_waf_blocks_app_id'), ['app_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_waf_blocks_at'), ['at'], unique=False)

    op.create_table('waf_hostnames',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('app_id', sa.Integer(), nullable=False),
    sa.Column('hostname', sa.String(length=253), nullable=False),
    sa.Column('is_primary', sa.Boolean(), nullable=False),
    sa.Column('cert_status', sa.Enum('pending', 'issued', 'failed', name='certificatestatus', native_enum=False, length=20), nullable=False),
    sa.Column('cert_error', sa.Text(), nullable=False),
    sa.Column('cert_not_after', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('cert_chain', sa.Text(), nullable=False),
    sa.Column('cert_key_sealed', sa.Text(), nullable=False),
    sa.Column('cert_action_id', sa.Integer(), nullable=True),
    sa.Column('cert_retry_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['app_id'], ['waf_apps.id'], name=op.f('fk_waf_hostnames_app_id_waf_apps'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_waf_hostnames')),
    sa.UniqueConstraint('hostname', name=op.f('uq_waf_hostnames_hostname'))
    )
    with op.batch_alter_table('waf_hostnames', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_waf_hostnames_app_id'), ['app_id'], unique=False)

    op.create_table('waf_challenges',
    sa.Column('token', sa.String(length=128), nullable=False),
    sa.Column('hostname_id', sa.Integer(), nullable=False),
    sa.Column('key_authorization', sa.String(length=512), nullable=False),
    sa.ForeignKeyConstraint(['hostname_id'], ['waf_hostnames.id'], name=op.f('fk_waf_challenges_hostname_id_waf_hostnames'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token', name=op.f('pk_waf_challenges'))
    )
    with op.batch_alter_table('waf_challenges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_waf_challenges_hostname_id'), ['hostname_id'], unique=False)

    op.create_table('waf_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('app_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('change', sa.String(length=200), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('created_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['app_id'], ['waf_apps.id'], name=op.f('fk_waf_versions_app_id_waf_apps'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_waf_versions')),
    sa.UniqueConstraint('app_id', 'number', name=op.f('uq_waf_versions_app_id'))
    )
    with op.batch_alter_table('waf_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_waf_versions_app_id'), ['app_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('waf_challenges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_waf_challenges_hostname_id'))

    op.drop_table('waf_challenges')
    with op.batch_alter_table('waf_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_waf_versions_app_id'))

    op.drop_table('waf_versions')
    with op.batch_alter_table('waf_hostnames', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_waf_hostnames_app_id'))

    op.drop_table('waf_hostnames')
    with op.batch_alter_table('waf_blocks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_waf_blocks_at'))
        batch_op.drop_index(batch_op.f('ix_waf_blocks_app_id'))

    op.drop_table('waf_blocks')
    with op.batch_alter_table('waf_apps', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_waf_apps_project_id'))
        batch_op.drop_index(batch_op.f('ix_waf_apps_instance_uuid'))

    op.drop_table('waf_apps')
