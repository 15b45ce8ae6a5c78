"""Users choose a colour theme: auto (the browser's preference), light or dark.

Revision ID: dc3b58c6ef87
Revises: 7b2d4e9a1c05
Create Date: 2026-11-30 04:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'dc3b58c6ef87'
down_revision = '7b2d4e9a1c05'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('theme', sa.String(length=8), server_default='auto', nullable=False))
        batch_op.create_check_constraint(
            batch_op.f('ck_users_theme_known'), "theme IN ('auto', 'light', 'dark')"
        )


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_users_theme_known'), type_='check')
        batch_op.drop_column('theme')
