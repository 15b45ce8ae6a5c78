"""Clusters: several Proxmox clusters in one Proxboard. Every existing record moves into the ``default``
cluster (the one the environment describes); a VMID is unique per cluster; audit lines name the cluster.

Revision ID: b5e2c8d41f90
Revises: 4a7d2c9e1f63
Create Date: 2026-12-01 07:00:00

"""
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa


revision = 'b5e2c8d41f90'
down_revision = '4a7d2c9e1f63'
branch_labels = None
depends_on = None

_CURRENT = "lifecycle != 'deleted'"


def upgrade():
    clusters = op.create_table(
        'clusters',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('host', sa.String(length=255), nullable=True),
        sa.Column('port', sa.Integer(), nullable=False),
        sa.Column('token_id', sa.String(length=255), nullable=True),
        sa.Column('token_secret_encrypted', sa.LargeBinary(), nullable=True),
        sa.Column('verify_ssl', sa.String(length=1024), nullable=False),
        sa.Column('ssh_user', sa.String(length=64), nullable=False),
        sa.Column('ssh_port', sa.Integer(), nullable=False),
        sa.Column('ssh_hosts', sa.String(length=1024), nullable=True),
        sa.Column('ssh_password_encrypted', sa.LargeBinary(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_clusters')),
        sa.UniqueConstraint('name', name=op.f('uq_clusters_name')),
    )
    now = datetime.now(UTC)
    op.bulk_insert(clusters, [{'id': 1, 'name': 'default', 'port': 8006, 'verify_ssl': 'true', 'ssh_user': 'root',
                               'ssh_port': 22, 'created_at': now, 'updated_at': now}])
    if op.get_bind().dialect.name == 'postgresql':  # the explicit id 1 left the sequence at 1
        op.execute("SELECT setval(pg_get_serial_sequence('clusters', 'id'), (SELECT MAX(id) FROM clusters))")
    with op.batch_alter_table('containers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cluster_id', sa.Integer(), server_default='1', nullable=False))
        batch_op.create_foreign_key(batch_op.f('fk_containers_cluster_id_clusters'), 'clusters', ['cluster_id'], ['id'])
        batch_op.drop_index('uq_containers_vmid_current', sqlite_where=sa.text(_CURRENT),
                            postgresql_where=sa.text(_CURRENT))
        batch_op.create_index(
            'uq_containers_cluster_vmid_current', ['cluster_id', 'vmid'], unique=True,
            sqlite_where=sa.text(_CURRENT), postgresql_where=sa.text(_CURRENT),
        )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cluster', sa.String(length=40), nullable=True))


def downgrade():
    # Back to one cluster: only the default cluster's records can keep their VMIDs under the old index.
    op.execute("DELETE FROM containers WHERE cluster_id != 1")
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_column('cluster')
    with op.batch_alter_table('containers', schema=None) as batch_op:
        batch_op.drop_index('uq_containers_cluster_vmid_current', sqlite_where=sa.text(_CURRENT),
                            postgresql_where=sa.text(_CURRENT))
        batch_op.create_index(
            'uq_containers_vmid_current', ['vmid'], unique=True,
            sqlite_where=sa.text(_CURRENT), postgresql_where=sa.text(_CURRENT),
        )
        batch_op.drop_constraint(batch_op.f('fk_containers_cluster_id_clusters'), type_='foreignkey')
        batch_op.drop_column('cluster_id')
    op.drop_table('clusters')
