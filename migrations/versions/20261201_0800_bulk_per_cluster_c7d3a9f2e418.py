"""Bulk actions per cluster: each bulk operation belongs to one cluster (existing ones to ``default``), and the
parts of one request over several clusters share a group.

Revision ID: c7d3a9f2e418
Revises: b5e2c8d41f90
Create Date: 2026-12-01 08:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'c7d3a9f2e418'
down_revision = 'b5e2c8d41f90'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('bulk_operations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cluster_id', sa.Integer(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('group_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_bulk_operations_cluster_id'), ['cluster_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_bulk_operations_group_id'), ['group_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_bulk_operations_cluster_id_clusters'), 'clusters',
                                    ['cluster_id'], ['id'], ondelete='CASCADE')
        batch_op.create_foreign_key(batch_op.f('fk_bulk_operations_group_id_bulk_operations'), 'bulk_operations',
                                    ['group_id'], ['id'], ondelete='SET NULL')


def downgrade():
    # Back to one cluster: another cluster's bulk actions would name the default cluster's guests by their VMIDs.
    op.execute("DELETE FROM bulk_items WHERE bulk_id IN (SELECT id FROM bulk_operations WHERE cluster_id != 1)")
    op.execute("DELETE FROM bulk_operations WHERE cluster_id != 1")
    with op.batch_alter_table('bulk_operations', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_bulk_operations_group_id_bulk_operations'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_bulk_operations_cluster_id_clusters'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_bulk_operations_group_id'))
        batch_op.drop_index(batch_op.f('ix_bulk_operations_cluster_id'))
        batch_op.drop_column('group_id')
        batch_op.drop_column('cluster_id')
