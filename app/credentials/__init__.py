"""Credentials vault: service secrets encrypted at rest with Fernet.

The key comes from ``CREDENTIALS_KEY`` (env ``PROXBOARD_CREDENTIALS_KEY``; "new,old" lists are
accepted, the first key encrypts), else from ``instance/credentials_key`` generated once with
mode 0600. ``flask credentials rotate-key`` re-encrypts everything with a new key.
"""
from __future__ import annotations

from .services import Rotation, UnknownService, reveal_service_credentials, rotate_key, store_service_credentials
from .vault import CredentialsKeyError, Vault, decrypt, encrypt, get_vault

__all__ = [
    "CredentialsKeyError",
    "Rotation",
    "Vault",
    "decrypt",
    "encrypt",
    "get_vault",
    "reveal_service_credentials",
    "rotate_key",
    "store_service_credentials",
]
