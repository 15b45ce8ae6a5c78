"""Alerts: rules, channels (their Apprise URL encrypted), incidents, mutes, maintenance windows, observed
statuses, deliveries.

Revision ID: 4a7d2c9e1f63
Revises: 8c4f1e2a9b37
Create Date: 2026-11-30 11:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '4a7d2c9e1f63'
down_revision = '8c4f1e2a9b37'
branch_labels = None
depends_on = None

# copied, not imported: the schema as it was on this day
ALERT_KINDS = (
    'container_stopped', 'container_gone', 'node_offline', 'proxmox_unreachable', 'service_failed',
    'cpu_high', 'memory_high', 'disk_high', 'provisioning_failed', 'backup_stale', 'credentials_stale',
)
INCIDENT_STATES = ('pending', 'open', 'resolved')


def _one_of(column, values):
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def upgrade():
    op.create_table(
        'alert_channels',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=80), nullable=False),
        sa.Column('url_encrypted', sa.LargeBinary(), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('rate_limit', sa.Integer(), nullable=False),
        sa.Column('dropped', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_channels')),
        sa.UniqueConstraint('name', name=op.f('uq_alert_channels_name')),
    )
    op.create_table(
        'alert_rules',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=120), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('threshold', sa.Float(), nullable=True),
        sa.Column('for_minutes', sa.Integer(), nullable=False),
        sa.Column('repeat_minutes', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(_one_of('kind', ALERT_KINDS), name=op.f('ck_alert_rules_kind_known')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_rules')),
    )
    op.create_table(
        'alert_rule_channels',
        sa.Column('rule_id', sa.Integer(), nullable=False),
        sa.Column('channel_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['channel_id'], ['alert_channels.id'],
                                name=op.f('fk_alert_rule_channels_channel_id_alert_channels'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['rule_id'], ['alert_rules.id'],
                                name=op.f('fk_alert_rule_channels_rule_id_alert_rules'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('rule_id', 'channel_id', name=op.f('pk_alert_rule_channels')),
    )
    op.create_table(
        'alert_incidents',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('rule_id', sa.Integer(), nullable=False),
        sa.Column('container_id', sa.Integer(), nullable=True),
        sa.Column('subject', sa.String(length=128), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('message', sa.Text(), nullable=False),
        sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('opened_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('notified', sa.Boolean(), nullable=False),
        sa.CheckConstraint(_one_of('state', INCIDENT_STATES), name=op.f('ck_alert_incidents_state_known')),
        sa.ForeignKeyConstraint(['container_id'], ['containers.id'],
                                name=op.f('fk_alert_incidents_container_id_containers'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['rule_id'], ['alert_rules.id'],
                                name=op.f('fk_alert_incidents_rule_id_alert_rules'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_incidents')),
    )
    with op.batch_alter_table('alert_incidents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alert_incidents_container_id'), ['container_id'], unique=False)
        batch_op.create_index('ix_alert_incidents_state_rule', ['state', 'rule_id'], unique=False)
    op.create_table(
        'alert_mutes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('container_id', sa.Integer(), nullable=False),
        sa.Column('until', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_by', sa.String(length=80), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['container_id'], ['containers.id'],
                                name=op.f('fk_alert_mutes_container_id_containers'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_mutes')),
    )
    with op.batch_alter_table('alert_mutes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alert_mutes_container_id'), ['container_id'], unique=False)
    op.create_table(
        'maintenance_windows',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('scope', sa.String(length=128), nullable=True),
        sa.Column('note', sa.String(length=255), nullable=True),
        sa.Column('created_by', sa.String(length=80), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_maintenance_windows')),
    )
    with op.batch_alter_table('maintenance_windows', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_maintenance_windows_ends_at'), ['ends_at'], unique=False)
    op.create_table(
        'alert_observations',
        sa.Column('container_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('previous', sa.String(length=16), nullable=True),
        sa.Column('since', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['container_id'], ['containers.id'],
                                name=op.f('fk_alert_observations_container_id_containers'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('container_id', name=op.f('pk_alert_observations')),
    )
    op.create_table(
        'alert_deliveries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('channel_id', sa.Integer(), nullable=False),
        sa.Column('incident_id', sa.Integer(), nullable=True),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ok', sa.Boolean(), nullable=False),
        sa.Column('title', sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(['channel_id'], ['alert_channels.id'],
                                name=op.f('fk_alert_deliveries_channel_id_alert_channels'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['incident_id'], ['alert_incidents.id'],
                                name=op.f('fk_alert_deliveries_incident_id_alert_incidents'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_deliveries')),
    )
    with op.batch_alter_table('alert_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_alert_deliveries_channel_sent', ['channel_id', 'sent_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_alert_deliveries_incident_id'), ['incident_id'], unique=False)


def downgrade():
    op.drop_table('alert_deliveries')
    op.drop_table('alert_observations')
    op.drop_table('maintenance_windows')
    op.drop_table('alert_mutes')
    op.drop_table('alert_incidents')
    op.drop_table('alert_rule_channels')
    op.drop_table('alert_rules')
    op.drop_table('alert_channels')
