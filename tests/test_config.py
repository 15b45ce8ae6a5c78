"""Configuration layering and the generated secret key."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from app import create_app
from app.config import DefaultConfig, normalise_database_url

ROOT = Path(__file__).resolve().parents[1]


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


GC_PROBE = """
import gc, json, sys
from app import create_app
default = gc.get_threshold()[0]
create_app({"SQLALCHEMY_DATABASE_URI": "sqlite:///%s/gc.db", "SECRET_KEY": "x", "TESTING": sys.argv[1] == "testing"})
print(json.dumps([gc.get_freeze_count(), gc.get_threshold()[0], default]))
"""


def test_a_serving_process_keeps_its_start_up_heap_out_of_the_collectors_walks(tmp_path):
    """A web or worker process freezes the application it built (hundreds of thousands of objects that every
    full collection walked, a third of a 10,000-container render) and collects young objects less often; an
    app built for tests leaves the collector alone. Each in a process of its own, as the collector is global."""
    env = {key: value for key, value in os.environ.items() if key != "PROXBOARD_GC_YOUNG_THRESHOLD"}
    results = {}
    for mode in ("serving", "testing"):
        done = subprocess.run([sys.executable, "-c", GC_PROBE % tmp_path, mode], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=120, check=True)
        results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    frozen, young, _ = results["serving"]
    assert frozen > 50_000 and young == DefaultConfig.GC_YOUNG_THRESHOLD
    frozen, young, default = results["testing"]
    assert frozen == 0 and young == default
