"""Storing, revealing and re-keying credentials (Credential rows, WizardDraft secrets)."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from cryptography.fernet import Fernet
from flask import current_app

from app.extensions import db
from app.models import Cluster, Credential, Event, Service, WizardDraft
from app.models.types import utcnow

from .vault import Vault, decrypt, encrypt, get_vault, reset_vault, write_key_file


class UnknownService(LookupError):
    """There is no service with that id."""

log = logging.getLogger("app.credentials")


def store_service_credentials(service: Service, values: dict[str, str] | None) -> None:
    """Make ``service``'s Credential rows match ``values``; ``None`` (file gone) marks them stale.

    Unchanged values are not re-encrypted, so ``updated_at`` tells when a secret last changed.
    Keys that vanished from the file stay, marked stale.
    """
    existing = {credential.key: credential for credential in service.credentials}
    if values is None:
        for credential in existing.values():
            credential.stale = True
        return
    for key, value in values.items():
        credential = existing.get(key)
        if credential is None:
            credential = Credential(container_id=service.container_id, key=key, value_encrypted=encrypt(value))
            service.credentials.append(credential)
        elif decrypt(credential.value_encrypted) != value:
            credential.value_encrypted = encrypt(value)
        credential.stale = False
    for key, credential in existing.items():
        if key not in values:
            credential.stale = True


def reveal_service_credentials(service_id: int, username: str) -> list[tuple[str, str, bool]]:
    """Decrypt a service's credentials as ``[(key, value, stale)]`` and record who looked.

    The Event names the service, the user and the keys, never the values.
    Raises UnknownService when there is no service ``service_id``.
    """
    service = db.session.get(Service, service_id)
    if service is None:
        raise UnknownService(f"There is no service {service_id}.")
    revealed = [(c.key, decrypt(c.value_encrypted), c.stale) for c in service.credentials]
    db.session.add(
        Event(
            container_id=service.container_id,
            type="log",
            message=f"Credentials of {service.name} revealed by {username}",
            meta={"service_id": service.id, "user": username, "keys": [key for key, _v, _s in revealed]},
        )
    )
    db.session.commit()
    log.info("credentials of service %s (container %s) revealed by %s", service.name, service.container_id, username)
    return revealed


@dataclass(frozen=True)
class Rotation:
    """The outcome of ``rotate_key``."""

    credentials: int
    drafts: int
    source: str
    new_key: str


def rotate_key(new_key: str | None = None) -> Rotation:
    """Re-encrypt every Credential, WizardDraft and cluster secret with a new key.

    With a key file, the file first holds "new,old" (both decrypt), then the database is
    re-encrypted and committed, then the file keeps only the new key: an interruption at any
    point leaves everything readable. With CREDENTIALS_KEY from the environment, the caller
    must install the returned key there.
    """
    app = current_app._get_current_object()
    old = get_vault()
    new_key = new_key or Fernet.generate_key().decode("ascii")
    both = Vault((new_key, *old.keys), old.source)
    if old.source == "file":
        write_key_file(app, both.keys)
    credentials = drafts = 0
    for credential in db.session.scalars(db.select(Credential)):
        credential.value_encrypted = both.rotate(credential.value_encrypted)
        credentials += 1
    for draft in db.session.scalars(db.select(WizardDraft).where(WizardDraft.secret_encrypted.is_not(None))):
        draft.secret_encrypted = both.rotate(draft.secret_encrypted)
        drafts += 1
    for cluster in db.session.scalars(db.select(Cluster)):  # other clusters' API token and SSH password
        for column in ("token_secret_encrypted", "ssh_password_encrypted"):
            if getattr(cluster, column) is not None:
                setattr(cluster, column, both.rotate(getattr(cluster, column)))
    db.session.commit()
    if old.source == "file":
        write_key_file(app, (new_key,))
    else:
        app.config["CREDENTIALS_KEY"] = new_key
    reset_vault(app)
    log.info("credentials key rotated: %d credentials, %d drafts re-encrypted", credentials, drafts)
    return Rotation(credentials, drafts, old.source, new_key)
