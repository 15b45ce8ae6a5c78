"""Vocabularies: the database refuses a lifecycle, operation state, event type or service scheme the code does not know.

A CHECK on containers.lifecycle, operations.state, events.type and template_services.scheme lists the
words of the code's tuples (LIFECYCLES, OPERATION_STATES, EVENT_TYPES, SERVICE_SCHEMES in app/models).

Proxboard only ever writes words from those tuples, so a row holding another word was edited by
hand, and only its editor knows what it meant. The upgrade therefore refuses before changing
anything, naming each column, the unknown words and how many rows hold them, and the operator
fixes those rows (or restores a backup) and runs ``flask db upgrade`` again.

The words are copied here, not imported: a migration describes the schema as it was on its day.

Revision ID: 2206c34db11d
Revises: 3639f0824b7e
Create Date: 2026-11-30 07:00:00

"""
from alembic import op
from alembic.util import CommandError
import sqlalchemy as sa


revision = '2206c34db11d'
down_revision = '3639f0824b7e'
branch_labels = None
depends_on = None

# (table, column, constraint name) -> the words allowed
VOCABULARIES = {
    ('containers', 'lifecycle', 'ck_containers_lifecycle_known'): ('creating', 'ready', 'error', 'gone', 'deleted'),
    ('operations', 'state', 'ck_operations_state_known'): ('queued', 'running', 'succeeded', 'failed'),
    ('events', 'type', 'ck_events_type_known'): ('log', 'step', 'complete', 'error'),
    ('template_services', 'scheme', 'ck_template_services_scheme_known'): ('http', 'https', 'tcp', 'udp'),
}


def _in_list(column, words):
    return f"{column} IN ({', '.join(repr(word) for word in words)})"


def unknown_words(connection):
    """One line per column holding words outside its vocabulary (empty when every row fits)."""
    problems = []
    for (table, column, _), words in VOCABULARIES.items():
        rows = connection.execute(sa.text(
            f"SELECT {column}, COUNT(*) FROM {table} WHERE NOT ({_in_list(column, words)}) "
            f"GROUP BY {column} ORDER BY {column}"
        )).all()
        if rows:
            found = ", ".join(f"{word!r} ({count} row{'s' if count != 1 else ''})" for word, count in rows)
            problems.append(f"{table}.{column} holds {found}; allowed: {', '.join(words)}")
    return problems


def upgrade():
    problems = unknown_words(op.get_bind())
    if problems:
        raise CommandError(
            "Cannot add the vocabulary checks: some rows hold words Proxboard never writes "
            "(edited by hand?). Nothing was changed. Set each to an allowed word, then run "
            "`flask db upgrade` again.\n  " + "\n  ".join(problems)
        )
    for (table, column, name), words in VOCABULARIES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_check_constraint(batch_op.f(name), _in_list(column, words))


def downgrade():
    for (table, _, name) in reversed(list(VOCABULARIES)):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(batch_op.f(name), type_='check')
