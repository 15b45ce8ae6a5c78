"""Bulk actions on the dashboard: one bulk operation and its containers, each with how it went.

Revision ID: 8c4f1e2a9b37
Revises: 5e1a7c3b9d20
Create Date: 2026-11-30 10:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '8c4f1e2a9b37'
down_revision = '5e1a7c3b9d20'
branch_labels = None
depends_on = None

# copied, not imported: the schema as it was on this day
BULK_ACTIONS = ('start', 'shutdown', 'stop', 'reboot', 'tag-add', 'tag-remove')
BULK_STATES = ('running', 'finished')
BULK_ITEM_STATES = ('queued', 'running', 'succeeded', 'failed', 'skipped')


def _one_of(column, values):
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def upgrade():
    op.create_table(
        'bulk_operations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('action', sa.String(length=16), nullable=False),
        sa.Column('tag', sa.String(length=64), nullable=True),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('requested_by', sa.String(length=80), nullable=True),
        sa.Column('selection', sa.String(length=255), nullable=True),
        sa.Column('upid', sa.String(length=255), nullable=True),
        sa.Column('node', sa.String(length=100), nullable=True),
        sa.Column('summary', sa.Text(), nullable=True),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(_one_of('action', BULK_ACTIONS), name=op.f('ck_bulk_operations_action_known')),
        sa.CheckConstraint(_one_of('state', BULK_STATES), name=op.f('ck_bulk_operations_state_known')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_bulk_operations')),
    )
    with op.batch_alter_table('bulk_operations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bulk_operations_state'), ['state'], unique=False)

    op.create_table(
        'bulk_items',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('bulk_id', sa.Integer(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('vmid', sa.BigInteger(), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('operation_id', sa.Integer(), nullable=True),
        sa.CheckConstraint(_one_of('state', BULK_ITEM_STATES), name=op.f('ck_bulk_items_state_known')),
        sa.ForeignKeyConstraint(['bulk_id'], ['bulk_operations.id'], name=op.f('fk_bulk_items_bulk_id_bulk_operations'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['operation_id'], ['operations.id'], name=op.f('fk_bulk_items_operation_id_operations'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_bulk_items')),
        sa.UniqueConstraint('bulk_id', 'vmid', name=op.f('uq_bulk_items_bulk_id_vmid')),
    )
    with op.batch_alter_table('bulk_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bulk_items_bulk_id'), ['bulk_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_bulk_items_operation_id'), ['operation_id'], unique=False)


def downgrade():
    with op.batch_alter_table('bulk_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bulk_items_operation_id'))
        batch_op.drop_index(batch_op.f('ix_bulk_items_bulk_id'))
    op.drop_table('bulk_items')
    with op.batch_alter_table('bulk_operations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bulk_operations_state'))
    op.drop_table('bulk_operations')
