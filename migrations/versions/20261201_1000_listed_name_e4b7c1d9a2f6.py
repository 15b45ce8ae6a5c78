"""Containers keep the name Proxmox last listed beside their snapshot (``listed_name``): every inventory read
compares it with what Proxmox lists, and extracting it from the snapshot's JSON was most of the read's cost.

Revision ID: e4b7c1d9a2f6
Revises: c7d3a9f2e418
Create Date: 2026-12-01 10:00:00

"""
import json

import sqlalchemy as sa
from alembic import op


revision = 'e4b7c1d9a2f6'
down_revision = 'c7d3a9f2e418'
branch_labels = None
depends_on = None

_CHUNK = 500


def upgrade():
    with op.batch_alter_table('containers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('listed_name', sa.String(length=255), nullable=True))
    # Copied in Python: SQLite and PostgreSQL read a JSON member each in their own words.
    containers = sa.table('containers', sa.column('id', sa.Integer), sa.column('snapshot', sa.Text),
                          sa.column('listed_name', sa.String))
    connection = op.get_bind()
    rows = connection.execute(sa.select(containers.c.id, sa.cast(containers.c.snapshot, sa.Text))
                              .where(containers.c.snapshot.is_not(None))).all()
    named = []
    for record_id, text in rows:
        try:
            snapshot = json.loads(text) if text else None
        except ValueError:
            continue
        name = snapshot.get("name") if isinstance(snapshot, dict) else None
        if isinstance(name, str):
            named.append({"record_id": record_id, "name": name[:255]})
    update = (containers.update().where(containers.c.id == sa.bindparam("record_id"))
              .values(listed_name=sa.bindparam("name")))
    for start in range(0, len(named), _CHUNK):
        connection.execute(update, named[start:start + _CHUNK])


def downgrade():
    with op.batch_alter_table('containers', schema=None) as batch_op:
        batch_op.drop_column('listed_name')
