"""wallets: every project gets its wallets (main and agent pool) when it is made; older projects get them here

Revision ID: 0011w
Revises: 0003
Create Date: 2026-12-06 04:45:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from cloudlet.config import Settings

revision: str = '0011w'
down_revision: str | None = '0003'  # the billing branch: wallets and ledger_entries
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The tables as this revision knows them, not as the models may describe them later.
PROJECTS = sa.table('projects', sa.column('id', sa.Integer))
WALLETS = sa.table('wallets', sa.column('id', sa.Integer), sa.column('project_id', sa.Integer),
                   sa.column('pool', sa.String), sa.column('currency', sa.String),
                   sa.column('low_balance_threshold_cents', sa.BigInteger),
                   sa.column('auto_funding_enabled', sa.Boolean),
                   sa.column('auto_funding_threshold_cents', sa.BigInteger),
                   sa.column('auto_funding_amount_cents', sa.BigInteger),
                   sa.column('created_at', sa.DateTime), sa.column('updated_at', sa.DateTime))
ENTRIES = sa.table('ledger_entries', sa.column('wallet_id', sa.Integer), sa.column('seq', sa.BigInteger),
                   sa.column('type', sa.String), sa.column('kind', sa.String),
                   sa.column('amount_cents', sa.BigInteger), sa.column('balance_after_cents', sa.BigInteger),
                   sa.column('idempotency_key', sa.String), sa.column('description', sa.String),
                   sa.column('created_at', sa.DateTime))


def backfill(connection: sa.Connection, settings: Settings) -> int:
    """Give every project that lacks one its main and agent wallets, with the trial credit a new
    project gets (what the first read used to make lazily); returns how many wallets were made."""
    now = datetime.now(UTC)
    if connection.dialect.name == 'sqlite':
        now = now.replace(tzinfo=None)  # stored naive in UTC, as kit.db.UTCDateTime does
    made = 0
    trials = {'main': settings.wallet_trial_credit_cents, 'agent': settings.agent_trial_credit_cents}
    for pool, trial in trials.items():
        missing = connection.execute(
            sa.select(PROJECTS.c.id).where(~sa.exists().where(WALLETS.c.project_id == PROJECTS.c.id,
                                                              WALLETS.c.pool == pool))
        ).scalars().all()
        for project_id in missing:
            wallet_id = connection.execute(WALLETS.insert().values(
                project_id=project_id, pool=pool, currency=settings.wallet_currency.strip().upper(),
                low_balance_threshold_cents=settings.wallet_low_balance_cents if pool == 'main' else None,
                auto_funding_enabled=False, auto_funding_threshold_cents=0, auto_funding_amount_cents=0,
                created_at=now, updated_at=now,
            ).returning(WALLETS.c.id)).scalar_one()
            if trial > 0:
                connection.execute(ENTRIES.insert().values(
                    wallet_id=wallet_id, seq=1, type='credit', kind='trial_credit', amount_cents=trial,
                    balance_after_cents=trial, idempotency_key=f'trial:{wallet_id}', description='Trial credit',
                    created_at=now))
            made += 1
    return made


def upgrade() -> None:
    backfill(op.get_bind(), Settings())


def downgrade() -> None:
    # The wallets stay: they may hold entries by now, and the ledger is never deleted.
    pass
