"""The migration guard: models and migrations cannot drift, and both databases migrate both ways."""
from __future__ import annotations

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import Column, MetaData, String, create_engine, inspect

from app import create_app
from app.extensions import db
from app.migration_guard import head_revision, migration_status, schema_drift


def make_app(url):
    return create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True, "SECRET_KEY": "test"})


def test_upgrade_matches_models_then_downgrades_and_upgrades_again(any_database_url):
    app = make_app(any_database_url)
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


def test_flask_db_check_passes_on_a_migrated_database(sqlite_url):
    """`flask db check` (the before-stop hook's command) agrees with the test above."""
    app = make_app(sqlite_url)
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


def test_sqlite_enforces_foreign_keys(app, db):
    """Deleting a container removes its events (ON DELETE CASCADE) on SQLite too."""
    from app.models import Container, Event

    container = Container(vmid=900, node="pve1")
    db.session.add(container)
    db.session.flush()
    db.session.add(Event(container_id=container.id, type="log", message="hello"))
    db.session.commit()
    db.session.execute(db.delete(Container).where(Container.vmid == 900))
    db.session.commit()
    assert db.session.scalar(db.select(db.func.count()).select_from(Event)) == 0
