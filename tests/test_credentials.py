"""The credentials vault: encryption at rest, key file, rotation."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from app.credentials import CredentialsKeyError, decrypt, encrypt, get_vault
from app.credentials.vault import reset_vault
from app.models import Credential, WizardDraft
from tests.fixtures.factories import make_container, make_user

SECRET = "vault-SECRET-value"


def test_key_file_is_generated_once_with_mode_0600(app):
    token = encrypt(SECRET)
    path = Path(app.instance_path) / "credentials_key"
    assert SECRET.encode() not in token and oct(path.stat().st_mode & 0o777) == "0o600"
    reset_vault(app)
    assert decrypt(token) == SECRET and get_vault().source == "file"


def test_configured_key_wins_and_a_wrong_key_fails_clearly(app):
    app.config["CREDENTIALS_KEY"] = Fernet.generate_key().decode()
    reset_vault(app)
    token = encrypt(SECRET)
    assert get_vault().source == "config" and not (Path(app.instance_path) / "credentials_key").exists()
    app.config["CREDENTIALS_KEY"] = Fernet.generate_key().decode()
    reset_vault(app)
    with pytest.raises(CredentialsKeyError):
        decrypt(token)
    app.config["CREDENTIALS_KEY"] = "not-a-key"
    reset_vault(app)
    with pytest.raises(CredentialsKeyError):
        encrypt(SECRET)


def seed(db) -> tuple[int, str]:
    container = make_container(4242)
    db.session.add(Credential(container_id=container.id, key="PASSWORD", value_encrypted=encrypt(SECRET)))
    user = make_user("bob")
    draft = WizardDraft(id="d" * 36, user_id=user.id, secret_encrypted=encrypt("draft-secret"))
    db.session.add(draft)
    db.session.commit()
    return container.id, draft.id


def test_rotate_key_with_key_file(app, db, runner):
    _container_id, draft_id = seed(db)
    old_key = (Path(app.instance_path) / "credentials_key").read_text()
    old_token = bytes(db.session.scalars(db.select(Credential.value_encrypted)).one())

    result = runner.invoke(args=["credentials", "rotate-key", "--yes"])

    assert result.exit_code == 0, result.output
    assert "Re-encrypted 1 credentials and 1 wizard secrets" in result.output
    new_key = (Path(app.instance_path) / "credentials_key").read_text()
    assert new_key != old_key and "," not in new_key
    assert oct(os.stat(Path(app.instance_path) / "credentials_key").st_mode & 0o777) == "0o600"
    db.session.expire_all()
    token = bytes(db.session.scalars(db.select(Credential.value_encrypted)).one())
    assert token != old_token and Fernet(new_key).decrypt(token).decode() == SECRET
    assert decrypt(db.session.get(WizardDraft, draft_id).secret_encrypted) == "draft-secret"
    with pytest.raises(Exception):
        Fernet(old_key).decrypt(token)


def test_rotate_key_from_environment_prints_instructions(app, db, runner):
    app.config["CREDENTIALS_KEY"] = Fernet.generate_key().decode()
    reset_vault(app)
    seed(db)
    result = runner.invoke(args=["credentials", "rotate-key", "--yes"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("PROXBOARD_CREDENTIALS_KEY="))
    new_key = line.split("=", 1)[1]
    db.session.expire_all()
    token = bytes(db.session.scalars(db.select(Credential.value_encrypted)).one())
    assert Fernet(new_key).decrypt(token).decode() == SECRET
    assert SECRET not in result.output


def test_rotate_key_asks_first(app, db, runner):
    seed(db)
    result = runner.invoke(args=["credentials", "rotate-key"], input="n\n")
    assert result.exit_code != 0 and "nothing changed" in result.output
