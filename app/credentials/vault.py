"""Encryption at rest for credentials: Fernet keys, the first one encrypts, all of them decrypt."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import Flask, current_app

from app.config import instance_secret

KEY_FILE = "credentials_key"
EXTENSION_KEY = "proxboard.vault"


class CredentialsKeyError(Exception):
    """The credentials key is missing, malformed or does not match the stored data."""


@dataclass(frozen=True)
class Vault:
    """Encrypts with the first key, decrypts with any (so a rotation can be interrupted safely)."""

    keys: tuple[str, ...]
    source: str  # "config" (CREDENTIALS_KEY / env) or "file" (instance/credentials_key)

    def __post_init__(self) -> None:
        if not self.keys:
            raise CredentialsKeyError("no credentials key")
        try:
            object.__setattr__(self, "_fernet", MultiFernet([Fernet(key) for key in self.keys]))
        except (ValueError, TypeError) as exc:
            raise CredentialsKeyError(
                "the credentials key is not a Fernet key (32 url-safe base64-encoded bytes)"
            ) from exc

    def __repr__(self) -> str:
        return f"<Vault {len(self.keys)} key(s) from {self.source}>"

    def encrypt(self, text: str) -> bytes:
        """Encrypt ``text`` with the primary key."""
        return self._fernet.encrypt(text.encode("utf-8"))

    def decrypt(self, token: bytes) -> str:
        """Decrypt a token made with any of the keys."""
        try:
            return self._fernet.decrypt(bytes(token)).decode("utf-8")
        except InvalidToken as exc:
            raise CredentialsKeyError(
                "cannot decrypt a stored credential: the credentials key does not match the data"
            ) from exc

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt ``token`` with the primary key."""
        try:
            return self._fernet.rotate(bytes(token))
        except InvalidToken as exc:
            raise CredentialsKeyError("cannot re-encrypt a stored credential with the known keys") from exc


def split_keys(value: str) -> tuple[str, ...]:
    """``"new,old"`` → ``("new", "old")``."""
    return tuple(key.strip() for key in str(value).split(",") if key.strip())


def load_vault(app: Flask) -> Vault:
    """The vault for ``app``: CREDENTIALS_KEY when set, else instance/credentials_key (made once, 0600)."""
    configured = app.config.get("CREDENTIALS_KEY")
    if configured:
        return Vault(split_keys(configured), "config")
    value = instance_secret(app, KEY_FILE, generator=lambda: Fernet.generate_key().decode("ascii"))
    return Vault(split_keys(value), "file")


def get_vault() -> Vault:
    """The current app's vault, loaded on first use (after the instance path is final)."""
    vault = current_app.extensions.get(EXTENSION_KEY)
    if vault is None:
        vault = current_app.extensions[EXTENSION_KEY] = load_vault(current_app)
    return vault


def reset_vault(app: Flask) -> None:
    """Forget the loaded vault so the next use reads the key again."""
    app.extensions.pop(EXTENSION_KEY, None)


def write_key_file(app: Flask, keys: tuple[str, ...]) -> Path:
    """Replace instance/credentials_key atomically, mode 0600."""
    path = Path(app.instance_path) / KEY_FILE
    tmp = path.with_name(f".{KEY_FILE}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(",".join(keys))
    os.replace(tmp, path)
    return path


def encrypt(text: str) -> bytes:
    """Encrypt ``text`` with the current app's credentials key."""
    return get_vault().encrypt(text)


def decrypt(token: bytes) -> str:
    """Decrypt a value encrypted by ``encrypt``."""
    return get_vault().decrypt(token)
