"""The migration guard: models and migrations cannot drift, and both databases migrate both ways."""
from __future__ import annotations

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import Column, MetaData, String, create_engine, inspect

from app import create_app
from app.extensions import db
from app.migration_guard import head_revision, migration_status, schema_drift


def make_app(url, instance_path):
    return create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True, "SECRET_KEY": "test"},
                      instance_path=str(instance_path))


def test_upgrade_matches_models_then_downgrades_and_upgrades_again(any_database_url, tmp_path):
    app = make_app(any_database_url, tmp_path)
    with app.app_context():
        upgrade()
        assert schema_drift(db.engine, db.metadata) == []
        assert migration_status(db.engine).state == "current"

        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        assert migration_status(db.engine).current is None

        upgrade()
        assert schema_drift(db.engine, db.metadata) == []
        assert migration_status(db.engine).current == head_revision()
        db.engine.dispose()


def test_drift_check_catches_a_model_change_without_migration(sqlite_url):
    """A column added to a model but not to a migration is reported, like the old `hostname` bug."""
    changed = MetaData(naming_convention=db.metadata.naming_convention)
    for table in db.metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["containers"].append_column(Column("fqdn", String(255), nullable=True))

    engine = create_engine(sqlite_url)
    try:
        drift = schema_drift(engine, changed)
        assert schema_drift(engine, db.metadata) == []
    finally:
        engine.dispose()
    assert [(diff[0], diff[3].name) for diff in drift] == [("add_column", "fqdn")]


def test_flask_db_check_passes_on_a_migrated_database(sqlite_url, tmp_path):
    """`flask db check` (the before-stop hook's command) agrees with the test above."""
    app = make_app(sqlite_url, tmp_path)
    result = app.test_cli_runner().invoke(args=["db", "check"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        db.engine.dispose()


@pytest.mark.parametrize("table", ["containers", "events", "services", "credentials", "operations"])
def test_constraints_follow_the_naming_convention(sqlite_url, table):
    engine = create_engine(sqlite_url)
    try:
        inspector = inspect(engine)
        names = [fk["name"] for fk in inspector.get_foreign_keys(table)]
        names += [ix["name"] for ix in inspector.get_indexes(table)]
    finally:
        engine.dispose()
    assert names and all(name and name.startswith(("fk_", "ix_", "uq_")) for name in names)


def test_sqlite_enforces_foreign_keys(make, db):
    """Deleting a container removes its events (ON DELETE CASCADE) on SQLite too."""
    from app.models import Container, Event

    make.event(make.container(vmid=900))
    db.session.execute(db.delete(Container).where(Container.vmid == 900))
    db.session.commit()
    assert db.session.scalar(db.select(db.func.count()).select_from(Event)) == 0


VOCABULARIES_REVISION = "2206c34db11d"


def test_vocabulary_checks_refuse_to_upgrade_over_unknown_words_and_change_nothing(any_database_url, tmp_path):
    """Rows edited by hand to a word Proxboard never writes: the upgrade names them and stops; once the
    operator fixes them it goes through."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from app.migration_guard import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    before = ScriptDirectory.from_config(config).get_revision(VOCABULARIES_REVISION).down_revision
    app = make_app(any_database_url, tmp_path)
    with app.app_context():
        upgrade(revision=before)
        with db.engine.begin() as connection:
            connection.execute(db.text(
                "INSERT INTO containers (id, vmid, node, lifecycle, managed, created_at, updated_at) VALUES "
                "(1, 100, 'pve1', 'archived', true, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP), "
                "(2, 101, 'pve1', 'ready', true, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
            connection.execute(db.text(
                "INSERT INTO events (container_id, type, message, created_at) VALUES "
                "(1, 'warning', 'a', CURRENT_TIMESTAMP), (2, 'warning', 'b', CURRENT_TIMESTAMP), "
                "(2, 'log', 'c', CURRENT_TIMESTAMP)"))

        result = app.test_cli_runner().invoke(args=["db", "upgrade"])
        assert result.exit_code == 1
        message = result.output
        assert "Nothing was changed" in message
        assert "containers.lifecycle holds 'archived' (1 row); allowed: creating, ready, error, gone, deleted" in message
        assert "events.type holds 'warning' (2 rows); allowed: log, step, complete, error" in message
        assert "operations.state" not in message
        assert migration_status(db.engine).current == before
        checks = [c["name"] for c in inspect(db.engine).get_check_constraints("containers")]
        assert "ck_containers_lifecycle_known" not in checks

        with db.engine.begin() as connection:
            connection.execute(db.text("UPDATE containers SET lifecycle = 'deleted' WHERE lifecycle = 'archived'"))
            connection.execute(db.text("UPDATE events SET type = 'log' WHERE type = 'warning'"))
        upgrade()
        assert migration_status(db.engine).state == "current"
        db.engine.dispose()


ROLES_REVISION_BEFORE = VOCABULARIES_REVISION  # the last revision without roles


def test_existing_users_become_admins_new_ones_viewers_and_the_downgrade_keeps_them(any_database_url, tmp_path):
    """Everyone who could sign in before roles could do everything: the upgrade keeps it so (admin); a user
    added afterwards starts as a viewer; going back keeps every user."""
    from app.auth.services import create_user
    from app.models import User

    app = make_app(any_database_url, tmp_path)
    with app.app_context():
        upgrade(revision=ROLES_REVISION_BEFORE)
        with db.engine.begin() as connection:
            connection.execute(db.text(
                "INSERT INTO users (username, password_hash, created_at, theme) VALUES "
                "('ada', 'x', CURRENT_TIMESTAMP, 'dark'), ('grace', 'y', CURRENT_TIMESTAMP, 'auto')"))

        upgrade()
        roles = dict(db.session.execute(db.select(User.username, User.role)).all())
        assert roles == {"ada": "admin", "grace": "admin"}
        with db.engine.begin() as connection:  # a row written without a role, as by an older tool
            connection.execute(db.text("INSERT INTO users (username, password_hash, created_at, theme) "
                                       "VALUES ('linus', 'z', CURRENT_TIMESTAMP, 'auto')"))
        create_user("margaret", "a long enough password")
        roles = dict(db.session.execute(db.select(User.username, User.role)).all())
        assert roles == {"ada": "admin", "grace": "admin", "linus": "viewer", "margaret": "viewer"}
        db.session.remove()

        downgrade(revision=ROLES_REVISION_BEFORE)
        assert "role" not in {column["name"] for column in inspect(db.engine).get_columns("users")}
        with db.engine.connect() as connection:
            kept = connection.execute(db.text("SELECT username, theme FROM users ORDER BY id")).all()
        assert [tuple(row) for row in kept] == [("ada", "dark"), ("grace", "auto"), ("linus", "auto"),
                                                ("margaret", "auto")]
        db.engine.dispose()


CLUSTERS_REVISION_BEFORE = "4a7d2c9e1f63"  # the last revision with one cluster


def test_existing_containers_move_into_the_default_cluster_and_the_downgrade_keeps_them(any_database_url, tmp_path):
    """A single-cluster database upgrades with every container record (and its VMID's uniqueness) in the
    ``default`` cluster, the audit log's lines kept; another cluster's guest may then reuse a VMID; going back
    keeps the default cluster's records."""
    from app.clusters import use_cluster
    from app.models import Cluster, Container

    app = make_app(any_database_url, tmp_path)
    with app.app_context():
        upgrade(revision=CLUSTERS_REVISION_BEFORE)
        with db.engine.begin() as connection:
            connection.execute(db.text(
                "INSERT INTO containers (vmid, node, hostname, lifecycle, managed, created_at, updated_at) VALUES "
                "(101, 'pve1', 'web', 'ready', true, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP), "
                "(101, 'pve1', 'old-web', 'deleted', true, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP), "
                "(102, 'pve2', 'db', 'gone', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
            connection.execute(db.text(
                "INSERT INTO audit_log (created_at, channel, action, vmid, outcome) "
                "VALUES (CURRENT_TIMESTAMP, 'web', 'container.stop', 101, 'succeeded')"))

        upgrade()
        rows = db.session.execute(db.select(Container.hostname, Container.cluster_id).order_by(Container.id)).all()
        assert [tuple(row) for row in rows] == [("web", 1), ("old-web", 1), ("db", 1)]
        assert db.session.scalars(db.select(Cluster.name)).all() == ["default"]
        assert Container.current(101).hostname == "web"
        db.session.add(Cluster(name="lab", host="10.0.0.5", token_id="root@pam!pb"))
        db.session.commit()
        with use_cluster("lab"):
            db.session.add(Container(vmid=101, node="lab1", hostname="lab-web"))
        db.session.commit()
        assert {c.hostname for c in db.session.scalars(db.select(Container).where(Container.vmid == 101))} \
            == {"web", "old-web", "lab-web"}
        db.session.remove()

        downgrade(revision=CLUSTERS_REVISION_BEFORE)
        with db.engine.connect() as connection:
            kept = connection.execute(db.text("SELECT hostname FROM containers ORDER BY id")).scalars().all()
            audit = connection.execute(db.text("SELECT vmid FROM audit_log")).scalars().all()
        assert kept == ["web", "old-web", "db"] and audit == [101]
        assert "clusters" not in inspect(db.engine).get_table_names()
        db.engine.dispose()


BULK_PER_CLUSTER_BEFORE = "b5e2c8d41f90"  # the last revision whose bulk actions worked on the default cluster only


def test_existing_bulk_actions_belong_to_the_default_cluster_and_the_downgrade_keeps_them(any_database_url, tmp_path):
    """A bulk action recorded before bulk actions spanned clusters is the default cluster's, its items kept; a
    request over two clusters is then a part each, grouped; going back keeps the default cluster's parts only."""
    from app.models import BulkItem, BulkOperation, Cluster

    app = make_app(any_database_url, tmp_path)
    with app.app_context():
        upgrade(revision=BULK_PER_CLUSTER_BEFORE)
        with db.engine.begin() as connection:
            connection.execute(db.text(
                "INSERT INTO bulk_operations (action, state, requested_by, selection, started_at) VALUES "
                "('stop', 'finished', 'alice', '2 selected containers', CURRENT_TIMESTAMP)"))
            old_id = connection.execute(db.text("SELECT id FROM bulk_operations")).scalar_one()
            connection.execute(db.text(
                "INSERT INTO bulk_items (bulk_id, position, vmid, name, state) VALUES "
                "(:id, 0, 101, 'web', 'succeeded'), (:id, 1, 102, 'db', 'skipped')"), {"id": old_id})

        upgrade()
        old = db.session.get(BulkOperation, old_id)
        assert old.cluster.name == "default" and old.group_id is None
        assert [(item.vmid, item.state) for item in old.items] == [(101, "succeeded"), (102, "skipped")]
        lab = Cluster(name="lab", host="10.0.0.5", token_id="root@pam!pb")
        db.session.add(lab)
        db.session.flush()
        first = BulkOperation(action="start", state="running", cluster_id=1)
        db.session.add(first)
        db.session.flush()
        first.group_id = first.id
        db.session.add(BulkOperation(action="start", state="running", cluster_id=lab.id, group_id=first.id,
                                     items=[BulkItem(position=0, vmid=101, name="lab-web", state="queued")]))
        db.session.commit()
        assert db.session.scalar(db.select(db.func.count()).where(BulkOperation.group_id == first.id)) == 2
        db.session.remove()

        downgrade(revision=BULK_PER_CLUSTER_BEFORE)
        with db.engine.connect() as connection:
            kept = connection.execute(db.text("SELECT id, action FROM bulk_operations ORDER BY id")).all()
            items = connection.execute(db.text("SELECT name FROM bulk_items ORDER BY id")).scalars().all()
        assert [tuple(row) for row in kept] == [(old_id, "stop"), (first.id, "start")] and items == ["web", "db"]
        assert "cluster_id" not in {column["name"] for column in inspect(db.engine).get_columns("bulk_operations")}
        db.engine.dispose()


LISTED_NAME_REVISION_BEFORE = "c7d3a9f2e418"  # the last revision reading the listed name out of the snapshot


def test_existing_records_keep_their_listed_name_beside_the_snapshot(any_database_url, tmp_path):
    """The upgrade copies each record's last-known name out of its snapshot (none for a record never seen, or a
    snapshot that is not an object), so the identity check goes on comparing the same names; going back keeps
    the snapshots."""
    from app.models import Container

    app = make_app(any_database_url, tmp_path)
    with app.app_context():
        upgrade(revision=LISTED_NAME_REVISION_BEFORE)
        with db.engine.begin() as connection:
            connection.execute(db.text(
                "INSERT INTO containers (vmid, node, lifecycle, managed, created_at, updated_at, cluster_id, snapshot) "
                "VALUES (101, 'pve1', 'ready', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1, :web), "
                "(102, 'pve1', 'creating', true, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1, NULL), "
                "(103, 'pve2', 'gone', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1, :odd)"),
                {"web": '{"name": "web", "status": "running"}', "odd": '["not", "an", "object"]'})

        upgrade()
        names = dict(db.session.execute(db.select(Container.vmid, Container.listed_name)).all())
        assert names == {101: "web", 102: None, 103: None}
        record = db.session.scalar(db.select(Container).filter_by(vmid=102))
        record.snapshot = {"name": "db", "status": "stopped"}  # written through the ORM: the name follows
        db.session.commit()
        assert db.session.scalar(db.select(Container.listed_name).filter_by(vmid=102)) == "db"
        db.session.remove()

        downgrade(revision=LISTED_NAME_REVISION_BEFORE)
        assert "listed_name" not in {column["name"] for column in inspect(db.engine).get_columns("containers")}
        with db.engine.connect() as connection:
            kept = connection.execute(db.text("SELECT vmid FROM containers WHERE snapshot IS NOT NULL ORDER BY vmid"))
            assert [row[0] for row in kept] == [101, 102, 103]
        db.engine.dispose()
