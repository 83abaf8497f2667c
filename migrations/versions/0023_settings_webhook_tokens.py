"""settings and webhook tokens: users' console preferences, a default SSH key per project, and the webhook
tokens that verify GitHub's and GitLab's push deliveries

Revision ID: 0023
Revises: 0001
Create Date: 2026-12-07 15:13:44.888955
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cloudlet.kit.db

revision: str = '0023'
down_revision: str | None = '0001'  # a branch of its own: settings and git webhooks (tokens belong to projects)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = '0007'  # ssh_keys; and regions (0002), which 0007 depends on


def upgrade() -> None:
    op.create_table('user_preferences',
    sa.Column('user_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('default_region_id', sa.Integer(), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('locale', sa.String(length=35), nullable=False),
    sa.Column('notify_email', sa.Boolean(), nullable=False),
    sa.Column('notify_in_app', sa.Boolean(), nullable=False),
    sa.Column('updated_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['default_region_id'], ['regions.id'], name=op.f('fk_user_preferences_default_region_id_regions'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_preferences_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_user_preferences'))
    )

    op.create_table('webhook_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('purpose', sa.String(length=200), nullable=False),
    sa.Column('prefix', sa.String(length=32), nullable=False),
    sa.Column('secret_hash', sa.String(length=64), nullable=False),
    sa.Column('secret_sealed', sa.Text(), nullable=False),
    sa.Column('last_used_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_webhook_tokens_created_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_webhook_tokens_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_tokens')),
    sa.UniqueConstraint('secret_hash', name=op.f('uq_webhook_tokens_secret_hash'))
    )
    with op.batch_alter_table('webhook_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_tokens_project_id'), ['project_id'], unique=False)

    with op.batch_alter_table('ssh_keys', schema=None) as batch_op:
        # false() is "false" on PostgreSQL and 0 on SQLite: existing keys are nobody's default
        batch_op.add_column(sa.Column('is_default', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('ssh_keys', schema=None) as batch_op:
        batch_op.drop_column('is_default')

    with op.batch_alter_table('webhook_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_tokens_project_id'))
    op.drop_table('webhook_tokens')

    op.drop_table('user_preferences')
