"""Flask extensions, created unbound here and bound to the app in ``create_app``."""
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask import current_app, request
from flask_wtf.csrf import CSRFProtect as _CSRFProtect
import sqlite3

from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base whose constraints get predictable names on every database."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class CSRFProtect(_CSRFProtect):
    """Flask-WTF's CSRF check before every POST, skipped for a request that one of the ``exempt_when`` checks
    clears (one signed in by an API token: ``app.auth.tokens``; a forged cross-site form cannot send its header)."""

    def __init__(self, app=None) -> None:
        self._request_checks: list = []
        super().__init__(app)

    def exempt_when(self, check) -> None:
        """Skip the check for the requests ``check()`` returns True for (registered once however often asked)."""
        if check not in self._request_checks:
            self._request_checks.append(check)

    def protect(self, apply_exemptions=False):
        """Flask-WTF's check, unless ``apply_exemptions`` (the before-request hook) and a check clears the request."""
        if (apply_exemptions and request.method in current_app.config["WTF_CSRF_METHODS"]
                and any(check() for check in self._request_checks)):
            return None
        return super().protect(apply_exemptions)


db = SQLAlchemy(model_class=Base)
migrate = Migrate(render_as_batch=True, compare_type=True)
csrf = CSRFProtect()
login_manager = LoginManager()


@event.listens_for(Engine, "connect")
def _enforce_sqlite_foreign_keys(dbapi_connection, connection_record) -> None:
    """SQLite ignores ON DELETE CASCADE / SET NULL unless asked, per connection."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
