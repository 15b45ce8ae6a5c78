"""The database keeps the models' rules itself: vocabularies as CHECKs equal to the code's tuples,
and a container's timeline removed with it by ON DELETE CASCADE (SQLite and PostgreSQL)."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import inspect, update
from sqlalchemy.exc import IntegrityError

from app.extensions import Base
from app.models import (
    EVENT_TYPES,
    FILE_POLICIES,
    LIFECYCLES,
    OPERATION_STATES,
    PACKAGE_MANAGERS,
    SERVICE_SCHEMES,
    ROLES,
    THEMES,
    Event,
    Operation,
    TemplateFile,
    TemplatePackage,
    TemplateService,
)

# The status/kind columns this module builds rows for: (table, column, the code's tuple).
VOCABULARIES = [
    ("containers", "lifecycle", LIFECYCLES),
    ("operations", "state", OPERATION_STATES),
    ("events", "type", EVENT_TYPES),
    ("template_services", "scheme", SERVICE_SCHEMES),
    ("template_files", "policy", FILE_POLICIES),
    ("template_packages", "manager", PACKAGE_MANAGERS),
    ("users", "theme", THEMES),
    ("users", "role", ROLES),
]
IDS = [f"{table}.{column}" for table, column, _ in VOCABULARIES]
# Every CHECK the models build with ``one_of``.
DECLARED = sorted({(table.name, *check.info["vocabulary"]) for table in Base.metadata.sorted_tables
                   for check in table.constraints if "vocabulary" in check.info})


def a_row(make, db, table):
    """One valid row of ``table``, as its model instance."""
    if table == "users":
        return make.user()
    if table.startswith("template_"):
        template = make.template()
        model = {"template_services": TemplateService(name="site", port=80),
                 "template_files": TemplateFile(name="app.conf", target_path="/etc"),
                 "template_packages": TemplatePackage(manager="apt", name="curl")}[table]
        model.template_id = template.id
        db.session.add(model)
        db.session.commit()
        return model
    container = make.container()
    return {"containers": container, "operations": make.operation(container),
            "events": make.event(container)}[table]


@pytest.mark.parametrize(("table", "column", "words"), VOCABULARIES, ids=IDS)
def test_the_database_refuses_a_word_outside_the_vocabulary(make, db, table, column, words):
    row = a_row(make, db, table)
    model = type(row)
    before = getattr(row, column)
    for word in words:  # every word of the code is accepted
        db.session.execute(update(model).where(model.id == row.id).values({column: word}))
    db.session.rollback()

    with pytest.raises(IntegrityError, match=f"ck_{table}_{column}_known|CHECK constraint failed"):
        db.session.execute(update(model).where(model.id == row.id).values({column: "bogus"}))
    db.session.rollback()
    db.session.expire_all()
    assert getattr(db.session.get(model, row.id), column) == before


@pytest.mark.parametrize(("table", "column", "words"), DECLARED, ids=[f"{t}.{c}" for t, c, _ in DECLARED])
def test_the_database_checks_list_exactly_the_code_tuples(db, table, column, words):
    """No drift: a word added to (or removed from) a tuple without a migration fails here."""
    checks = {check["name"]: check["sqltext"] for check in inspect(db.engine).get_check_constraints(table)}
    sqltext = checks[f"ck_{table}_{column}_known"]
    # SQLite keeps "lifecycle IN ('a', 'b')"; PostgreSQL rewrites it to "= ANY (ARRAY['a'::…, 'b'::…])".
    assert tuple(re.findall(r"'((?:[^']|'')*)'", sqltext)) == words


def test_the_vocabulary_columns_of_this_module_are_all_declared_checks():
    assert set(VOCABULARIES) <= set(DECLARED)


def test_deleting_a_container_removes_its_timeline_and_operations(make, db):
    container, other = make.container(vmid=100), make.container(vmid=101)
    make.events(container, 3)
    make.operation(container, state="succeeded")
    make.event(other, message="keep me")

    assert [e.message for e in db.session.scalars(container.events.select())] == ["log 2", "log 1", "log 0"]
    db.session.delete(container)
    db.session.commit()

    assert [e.message for e in db.session.scalars(db.select(Event))] == ["keep me"]
    assert db.session.scalars(db.select(Operation)).all() == []


def test_a_container_knows_its_template_until_the_template_is_deleted(make, db):
    template = make.template("nginx")
    container = make.container(template_id=template.id)
    assert container.template.name == "nginx"
    db.session.delete(template)
    db.session.commit()
    db.session.expire_all()
    assert container.template is None and container.template_id is None
