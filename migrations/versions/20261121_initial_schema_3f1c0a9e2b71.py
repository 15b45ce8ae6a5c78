"""Initial schema: users, containers, templates, services, credentials, events, operations, wizard drafts.

Revision ID: 3f1c0a9e2b71
Revises: 
Create Date: 2026-11-21 11:53:58.231094

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '3f1c0a9e2b71'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('container_templates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('ostemplate', sa.String(length=255), nullable=True),
    sa.Column('cores', sa.Integer(), nullable=False),
    sa.Column('memory', sa.Integer(), nullable=False),
    sa.Column('swap', sa.Integer(), nullable=False),
    sa.Column('disk', sa.Integer(), nullable=False),
    sa.Column('storage', sa.String(length=100), nullable=True),
    sa.Column('bridge', sa.String(length=100), nullable=True),
    sa.Column('unprivileged', sa.Boolean(), nullable=False),
    sa.Column('nesting', sa.Boolean(), nullable=False),
    sa.Column('keyctl', sa.Boolean(), nullable=False),
    sa.Column('fuse', sa.Boolean(), nullable=False),
    sa.Column('tags', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('cores >= 1', name=op.f('ck_container_templates_cores_positive')),
    sa.CheckConstraint('disk >= 1', name=op.f('ck_container_templates_disk_min')),
    sa.CheckConstraint('memory >= 16', name=op.f('ck_container_templates_memory_min')),
    sa.CheckConstraint('swap >= 0', name=op.f('ck_container_templates_swap_non_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_container_templates')),
    sa.UniqueConstraint('name', name=op.f('uq_container_templates_name'))
    )
    op.create_table('package_buckets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_package_buckets')),
    sa.UniqueConstraint('name', name=op.f('uq_package_buckets_name'))
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=80), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('containers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('vmid', sa.BigInteger(), nullable=False),
    sa.Column('node', sa.String(length=100), nullable=False),
    sa.Column('hostname', sa.String(length=255), nullable=True),
    sa.Column('lifecycle', sa.String(length=16), nullable=False),
    sa.Column('managed', sa.Boolean(), nullable=False),
    sa.Column('template_id', sa.Integer(), nullable=True),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.Column('created_by', sa.String(length=80), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('snapshot', sa.JSON(), nullable=True),
    sa.Column('snapshot_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['template_id'], ['container_templates.id'], name=op.f('fk_containers_template_id_container_templates'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_containers')),
    sa.UniqueConstraint('vmid', name=op.f('uq_containers_vmid'))
    )
    with op.batch_alter_table('containers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_containers_template_id'), ['template_id'], unique=False)

    op.create_table('template_buckets',
    sa.Column('template_id', sa.Integer(), nullable=False),
    sa.Column('bucket_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['bucket_id'], ['package_buckets.id'], name=op.f('fk_template_buckets_bucket_id_package_buckets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['template_id'], ['container_templates.id'], name=op.f('fk_template_buckets_template_id_container_templates'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('template_id', 'bucket_id', name=op.f('pk_template_buckets'))
    )
    op.create_table('template_files',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('template_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('target_path', sa.String(length=1024), nullable=False),
    sa.Column('policy', sa.String(length=16), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.CheckConstraint("policy IN ('replace', 'default', 'backup')", name=op.f('ck_template_files_policy_known')),
    sa.ForeignKeyConstraint(['template_id'], ['container_templates.id'], name=op.f('fk_template_files_template_id_container_templates'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_template_files'))
    )
    with op.batch_alter_table('template_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_template_files_template_id'), ['template_id'], unique=False)

    op.create_table('template_packages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('template_id', sa.Integer(), nullable=True),
    sa.Column('bucket_id', sa.Integer(), nullable=True),
    sa.Column('manager', sa.String(length=8), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('version', sa.String(length=100), nullable=True),
    sa.CheckConstraint("manager IN ('apt', 'pip', 'npm')", name=op.f('ck_template_packages_manager_known')),
    sa.CheckConstraint('(template_id IS NULL) <> (bucket_id IS NULL)', name=op.f('ck_template_packages_one_owner')),
    sa.ForeignKeyConstraint(['bucket_id'], ['package_buckets.id'], name=op.f('fk_template_packages_bucket_id_package_buckets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['template_id'], ['container_templates.id'], name=op.f('fk_template_packages_template_id_container_templates'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_template_packages'))
    )
    with op.batch_alter_table('template_packages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_template_packages_bucket_id'), ['bucket_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_template_packages_template_id'), ['template_id'], unique=False)

    op.create_table('template_scripts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('template_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['template_id'], ['container_templates.id'], name=op.f('fk_template_scripts_template_id_container_templates'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_template_scripts'))
    )
    with op.batch_alter_table('template_scripts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_template_scripts_template_id'), ['template_id'], unique=False)

    op.create_table('template_services',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('template_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('unit', sa.String(length=255), nullable=True),
    sa.Column('port', sa.Integer(), nullable=True),
    sa.Column('scheme', sa.String(length=8), nullable=False),
    sa.Column('web_path', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['template_id'], ['container_templates.id'], name=op.f('fk_template_services_template_id_container_templates'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_template_services'))
    )
    with op.batch_alter_table('template_services', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_template_services_template_id'), ['template_id'], unique=False)

    op.create_table('events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('container_id', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['container_id'], ['containers.id'], name=op.f('fk_events_container_id_containers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_container_id_created_at', ['container_id', 'created_at'], unique=False)

    op.create_table('operations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('container_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('upid', sa.String(length=255), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('requested_by', sa.String(length=80), nullable=True),
    sa.Column('step', sa.String(length=64), nullable=True),
    sa.Column('progress', sa.Integer(), nullable=False),
    sa.Column('params', sa.JSON(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['container_id'], ['containers.id'], name=op.f('fk_operations_container_id_containers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_operations'))
    )
    with op.batch_alter_table('operations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_operations_container_id'), ['container_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_operations_state'), ['state'], unique=False)
        batch_op.create_index(
            'uq_operations_one_pending_per_container', ['container_id'], unique=True,
            sqlite_where=sa.text("state IN ('queued', 'running')"),
            postgresql_where=sa.text("state IN ('queued', 'running')"),
        )

    op.create_table('services',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('container_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('unit', sa.String(length=255), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('port', sa.Integer(), nullable=True),
    sa.Column('protocol', sa.String(length=8), nullable=True),
    sa.Column('web_url', sa.String(length=1024), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('checked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['container_id'], ['containers.id'], name=op.f('fk_services_container_id_containers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_services')),
    sa.UniqueConstraint('container_id', 'name', name=op.f('uq_services_container_id_name'))
    )
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_services_container_id'), ['container_id'], unique=False)

    op.create_table('wizard_drafts',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('template_id', sa.Integer(), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('secret_encrypted', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('consumed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('container_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['container_id'], ['containers.id'], name=op.f('fk_wizard_drafts_container_id_containers'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['template_id'], ['container_templates.id'], name=op.f('fk_wizard_drafts_template_id_container_templates'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_wizard_drafts_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wizard_drafts'))
    )
    with op.batch_alter_table('wizard_drafts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wizard_drafts_user_id'), ['user_id'], unique=False)

    op.create_table('credentials',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('container_id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=True),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('value_encrypted', sa.LargeBinary(), nullable=False),
    sa.Column('stale', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['container_id'], ['containers.id'], name=op.f('fk_credentials_container_id_containers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_credentials_service_id_services'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credentials'))
    )
    with op.batch_alter_table('credentials', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_credentials_container_id'), ['container_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_credentials_service_id'), ['service_id'], unique=False)



def downgrade():
    with op.batch_alter_table('credentials', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_credentials_service_id'))
        batch_op.drop_index(batch_op.f('ix_credentials_container_id'))

    op.drop_table('credentials')
    with op.batch_alter_table('wizard_drafts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_wizard_drafts_user_id'))

    op.drop_table('wizard_drafts')
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_services_container_id'))

    op.drop_table('services')
    with op.batch_alter_table('operations', schema=None) as batch_op:
        batch_op.drop_index('uq_operations_one_pending_per_container')
        batch_op.drop_index(batch_op.f('ix_operations_state'))
        batch_op.drop_index(batch_op.f('ix_operations_container_id'))

    op.drop_table('operations')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_container_id_created_at')

    op.drop_table('events')
    with op.batch_alter_table('template_services', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_template_services_template_id'))

    op.drop_table('template_services')
    with op.batch_alter_table('template_scripts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_template_scripts_template_id'))

    op.drop_table('template_scripts')
    with op.batch_alter_table('template_packages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_template_packages_template_id'))
        batch_op.drop_index(batch_op.f('ix_template_packages_bucket_id'))

    op.drop_table('template_packages')
    with op.batch_alter_table('template_files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_template_files_template_id'))

    op.drop_table('template_files')
    op.drop_table('template_buckets')
    with op.batch_alter_table('containers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_containers_template_id'))

    op.drop_table('containers')
    op.drop_table('users')
    op.drop_table('package_buckets')
    op.drop_table('container_templates')
