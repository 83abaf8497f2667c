"""catalog: regions, plans, cycles, rates, OS templates, project prices, IP pools

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 11:50:14.009919
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cloudlet.kit.db

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('billing_cycles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('months', sa.Integer(), nullable=False),
    sa.Column('discount_bps', sa.Integer(), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('sort_order', sa.Integer(), nullable=False),
    sa.CheckConstraint('discount_bps >= 0 AND discount_bps <= 10000', name=op.f('ck_billing_cycles_discount_range')),
    sa.CheckConstraint('months > 0', name=op.f('ck_billing_cycles_months_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_cycles')),
    sa.UniqueConstraint('code', name=op.f('uq_billing_cycles_code'))
    )
    op.create_table('exchange_rates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('rate', sa.Numeric(precision=20, scale=8), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('fetched_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('rate > 0', name=op.f('ck_exchange_rates_rate_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exchange_rates')),
    sa.UniqueConstraint('currency', name=op.f('uq_exchange_rates_currency'))
    )
    op.create_table('os_templates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('family', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('os', sa.String(length=200), nullable=False),
    sa.Column('version', sa.String(length=32), nullable=False),
    sa.Column('is_windows', sa.Boolean(), nullable=False),
    sa.Column('min_balance', sa.BigInteger(), nullable=False),
    sa.Column('min_ram_mb', sa.Integer(), nullable=False),
    sa.Column('min_disk_gb', sa.Integer(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=True),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('sort_order', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_os_templates')),
    sa.UniqueConstraint('code', name=op.f('uq_os_templates_code'))
    )
    with op.batch_alter_table('os_templates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_os_templates_family'), ['family'], unique=False)

    op.create_table('plan_categories',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=False),
    sa.Column('sort_order', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plan_categories')),
    sa.UniqueConstraint('code', name=op.f('uq_plan_categories_code'))
    )
    op.create_table('regions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('flag', sa.String(length=16), nullable=False),
    sa.Column('is_available', sa.Boolean(), nullable=False),
    sa.Column('sort_order', sa.Integer(), nullable=False),
    sa.Column('created_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_regions')),
    sa.UniqueConstraint('code', name=op.f('uq_regions_code'))
    )
    op.create_table('ip_pools',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('region_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('cidr', sa.String(length=64), nullable=False),
    sa.Column('gateway', sa.String(length=64), nullable=True),
    sa.Column('reserved', sa.JSON(), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['region_id'], ['regions.id'], name=op.f('fk_ip_pools_region_id_regions'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ip_pools')),
    sa.UniqueConstraint('cidr', name=op.f('uq_ip_pools_cidr'))
    )
    with op.batch_alter_table('ip_pools', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ip_pools_region_id'), ['region_id'], unique=False)

    op.create_table('plans',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('category_id', sa.Integer(), nullable=False),
    sa.Column('vcpu', sa.Integer(), nullable=False),
    sa.Column('ram_mb', sa.Integer(), nullable=False),
    sa.Column('disk_gb', sa.Integer(), nullable=False),
    sa.Column('bandwidth_gb', sa.Integer(), nullable=False),
    sa.Column('monthly_price', sa.BigInteger(), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('sort_order', sa.Integer(), nullable=False),
    sa.Column('created_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('monthly_price >= 0', name=op.f('ck_plans_price_not_negative')),
    sa.ForeignKeyConstraint(['category_id'], ['plan_categories.id'], name=op.f('fk_plans_category_id_plan_categories'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plans')),
    sa.UniqueConstraint('code', name=op.f('uq_plans_code'))
    )
    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_plans_category_id'), ['category_id'], unique=False)

    op.create_table('ip_allocations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pool_id', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('instance_id', sa.String(length=64), nullable=True),
    sa.Column('allocated_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['pool_id'], ['ip_pools.id'], name=op.f('fk_ip_allocations_pool_id_ip_pools'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ip_allocations')),
    sa.UniqueConstraint('address', name=op.f('uq_ip_allocations_address'))
    )
    with op.batch_alter_table('ip_allocations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ip_allocations_instance_id'), ['instance_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ip_allocations_pool_id'), ['pool_id'], unique=False)

    op.create_table('plan_regions',
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('region_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], name=op.f('fk_plan_regions_plan_id_plans'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['region_id'], ['regions.id'], name=op.f('fk_plan_regions_region_id_regions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('plan_id', 'region_id', name=op.f('pk_plan_regions'))
    )
    op.create_table('project_prices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('discount_bps', sa.Integer(), nullable=True),
    sa.Column('monthly_price', sa.BigInteger(), nullable=True),
    sa.Column('note', sa.String(length=500), nullable=False),
    sa.Column('created_at', cloudlet.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('(discount_bps IS NULL) <> (monthly_price IS NULL)', name=op.f('ck_project_prices_one_kind')),
    sa.CheckConstraint('discount_bps IS NULL OR (discount_bps >= 0 AND discount_bps <= 10000)', name=op.f('ck_project_prices_discount_range')),
    sa.CheckConstraint('monthly_price IS NULL OR monthly_price >= 0', name=op.f('ck_project_prices_price_not_negative')),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], name=op.f('fk_project_prices_plan_id_plans'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_project_prices_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_project_prices')),
    sa.UniqueConstraint('project_id', 'plan_id', name=op.f('uq_project_prices_project_id'))
    )
    with op.batch_alter_table('project_prices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_project_prices_plan_id'), ['plan_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_project_prices_project_id'), ['project_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('project_prices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_project_prices_project_id'))
        batch_op.drop_index(batch_op.f('ix_project_prices_plan_id'))

    op.drop_table('project_prices')
    op.drop_table('plan_regions')
    with op.batch_alter_table('ip_allocations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ip_allocations_pool_id'))
        batch_op.drop_index(batch_op.f('ix_ip_allocations_instance_id'))

    op.drop_table('ip_allocations')
    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_plans_category_id'))

    op.drop_table('plans')
    with op.batch_alter_table('ip_pools', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ip_pools_region_id'))

    op.drop_table('ip_pools')
    op.drop_table('regions')
    op.drop_table('plan_categories')
    with op.batch_alter_table('os_templates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_os_templates_family'))

    op.drop_table('os_templates')
    op.drop_table('exchange_rates')
    op.drop_table('billing_cycles')
