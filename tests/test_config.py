"""Configuration layering and the generated secret key."""
from __future__ import annotations

import stat

from app import create_app
from app.config import normalise_database_url


def test_secret_key_generated_once_with_mode_0600(tmp_path, monkeypatch):
    monkeypatch.delenv("PROXBOARD_SECRET_KEY", raising=False)
    monkeypatch.setattr("flask.Flask.auto_find_instance_path", lambda self: str(tmp_path / "instance"))
    first = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/a.db"})
    second = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/a.db"})
    key_file = tmp_path / "instance" / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"] == key_file.read_text()
    assert len(first.config["SECRET_KEY"]) >= 32


def test_environment_overrides_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("PROXBOARD_SECRET_KEY", "from-env")
    monkeypatch.setenv("PROXBOARD_REFRESH_SECONDS", "12")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/env.db")
    app = create_app()
    assert app.config["SECRET_KEY"] == "from-env"
    assert app.config["REFRESH_SECONDS"] == 12
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path}/env.db"


def test_default_database_is_sqlite_in_instance(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setattr("flask.Flask.auto_find_instance_path", lambda self: str(tmp_path / "inst"))
    app = create_app({"SECRET_KEY": "x"})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'inst' / 'proxboard.db'}"


def test_postgres_urls_use_psycopg3():
    assert normalise_database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_database_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"


def test_passwords_are_hashed_at_full_scrypt_cost_unless_configured(tmp_path):
    from app.models import User

    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/a.db", "SECRET_KEY": "x"})
    with app.app_context():
        user = User(username="alice")
        user.set_password("correct horse battery")
    assert user.password_hash.startswith("scrypt:32768:8:1$")
    cheap = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/a.db", "SECRET_KEY": "x",
                        "PASSWORD_HASH_METHOD": "scrypt:1024:8:1"})
    with cheap.app_context():
        assert user.check_password("correct horse battery")  # a hash names its own cost: old ones stay valid
        user.set_password("correct horse battery")
    assert user.password_hash.startswith("scrypt:1024:8:1$")
