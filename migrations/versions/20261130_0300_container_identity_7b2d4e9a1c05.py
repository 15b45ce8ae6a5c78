"""Container identity: a VMID names one current record; fingerprint and gone_at.

A guest can be destroyed and another created with the same VMID. The unique constraint on
``containers.vmid`` made the second guest's record impossible to insert; it becomes a partial
unique index over records that are not archived (``lifecycle != 'deleted'``).

Revision ID: 7b2d4e9a1c05
Revises: 3f1c0a9e2b71
Create Date: 2026-11-30 03:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '7b2d4e9a1c05'
down_revision = '3f1c0a9e2b71'
branch_labels = None
depends_on = None

_CURRENT = "lifecycle != 'deleted'"


def upgrade():
    with op.batch_alter_table('containers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fingerprint', sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column('gone_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_constraint(batch_op.f('uq_containers_vmid'), type_='unique')
        batch_op.create_index(
            'uq_containers_vmid_current', ['vmid'], unique=True,
            sqlite_where=sa.text(_CURRENT), postgresql_where=sa.text(_CURRENT),
        )


def downgrade():
    # Only the newest record of each VMID can keep it under the old unique constraint.
    op.execute(
        "DELETE FROM containers WHERE id NOT IN (SELECT MAX(id) FROM containers GROUP BY vmid)"
    )
    op.execute("UPDATE containers SET lifecycle = 'deleted' WHERE lifecycle = 'gone'")
    with op.batch_alter_table('containers', schema=None) as batch_op:
        batch_op.drop_index('uq_containers_vmid_current')
        batch_op.create_unique_constraint(batch_op.f('uq_containers_vmid'), ['vmid'])
        batch_op.drop_column('gone_at')
        batch_op.drop_column('fingerprint')
