"""agent conversations: a server's chats with the AI agent, their messages and tool transcripts, and their cost;
the Telegram chats linked to servers' agents, and where the bot's reading of Telegram's updates stands

Revision ID: 0020
Revises: 0001
Create Date: 2026-12-07 14:25:39.849615
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cloudlet.kit.db

revision: str = '0020'
down_revision: str | None = '0001'  # a branch of its own: the agent (conversations belong to projects)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('agent_conversations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('messages', sa.Integer(), nullable=False),
    sa.Column('input_tokens', sa.BigInteger(), nullable=False),
    sa.Column('output_tokens', sa.BigInteger(), nullable=False),
    sa.Column('tool_calls', sa.Integer(), nullable=False),
    sa.Column('cost_microcents', sa.BigInteger(), nullable=False),
    sa.Column('charged_cents', sa.BigInteger(), nullable=False),
    sa.Column('created_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_agent_conversations_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_conversations'))
    )
    with op.batch_alter_table('agent_conversations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agent_conversations_instance_uuid'), ['instance_uuid'], unique=False)
        batch_op.create_index(batch_op.f('ix_agent_conversations_project_id'), ['project_id'], unique=False)

    op.create_table('agent_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('role', sa.Enum('user', 'assistant', 'tool', name='role', native_enum=False, length=20), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('tool_calls', sa.JSON(), nullable=False),
    sa.Column('tool_call_id', sa.String(length=100), nullable=False),
    sa.Column('tool_name', sa.String(length=40), nullable=False),
    sa.Column('tool_arguments', sa.JSON(), nullable=False),
    sa.Column('exit_status', sa.Integer(), nullable=True),
    sa.Column('truncated', sa.Boolean(), nullable=False),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.Column('input_tokens', sa.Integer(), nullable=False),
    sa.Column('output_tokens', sa.Integer(), nullable=False),
    sa.Column('cost_microcents', sa.BigInteger(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('approval', sa.Enum('', 'pending', 'approved', 'denied', name='approval', native_enum=False, length=20), nullable=False),
    sa.Column('created_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['agent_conversations.id'], name=op.f('fk_agent_messages_conversation_id_agent_conversations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_messages')),
    sa.UniqueConstraint('conversation_id', 'seq', name=op.f('uq_agent_messages_conversation_id'))
    )
    with op.batch_alter_table('agent_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agent_messages_conversation_id'), ['conversation_id'], unique=False)

    op.create_table('agent_telegram_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('chat_id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sa.Integer(), nullable=True),
    sa.Column('created_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['agent_conversations.id'], name=op.f('fk_agent_telegram_links_conversation_id_agent_conversations'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_agent_telegram_links_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_agent_telegram_links_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_telegram_links')),
    sa.UniqueConstraint('chat_id', name=op.f('uq_agent_telegram_links_chat_id')),
    sa.UniqueConstraint('instance_uuid', name=op.f('uq_agent_telegram_links_instance_uuid'))
    )
    with op.batch_alter_table('agent_telegram_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agent_telegram_links_conversation_id'), ['conversation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_agent_telegram_links_project_id'), ['project_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_agent_telegram_links_user_id'), ['user_id'], unique=False)

    op.create_table('agent_telegram_cursors',
    sa.Column('bot_id', sa.String(length=32), nullable=False),
    sa.Column('next_update_id', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('bot_id', name=op.f('pk_agent_telegram_cursors'))
    )


def downgrade() -> None:
    op.drop_table('agent_telegram_cursors')
    with op.batch_alter_table('agent_telegram_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agent_telegram_links_user_id'))
        batch_op.drop_index(batch_op.f('ix_agent_telegram_links_project_id'))
        batch_op.drop_index(batch_op.f('ix_agent_telegram_links_conversation_id'))

    op.drop_table('agent_telegram_links')
    with op.batch_alter_table('agent_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agent_messages_conversation_id'))

    op.drop_table('agent_messages')
    with op.batch_alter_table('agent_conversations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agent_conversations_project_id'))
        batch_op.drop_index(batch_op.f('ix_agent_conversations_instance_uuid'))

    op.drop_table('agent_conversations')
