"""Adding, changing, checking and removing clusters: what the Settings page and ``flask clusters`` do.

Every function raises ``ClusterError`` (a ValueError) with the sentence to show when the input is refused, and
changes nothing then. The caller commits nothing: each function commits its own change.
"""
from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import func

from app.clusters import DEFAULT_CLUSTER, forget_clusters
from app.credentials.vault import get_vault
from app.extensions import db
from app.models import Cluster, Container
from app.models.cluster import NAME_PATTERN
from app.proxmox.settings import read_verify_ssl
from app.ssh.errors import SSHConfigError
from app.ssh.settings import parse_hosts

TOKEN_ID = re.compile(r"^[A-Za-z0-9._@-]+@[A-Za-z0-9._-]+![A-Za-z][A-Za-z0-9._-]*$")  # user@realm!name (pve's token id)
HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
                      r"[A-Za-z0-9])?)*$")


class ClusterError(ValueError):
    """A cluster's settings are refused (the message says why); nothing was changed."""


@dataclass(frozen=True)
class ClusterSettings:
    """What an admin gives for a cluster. ``token_secret`` and ``ssh_password`` None on an update keep the stored
    ones; ``verify_ssl`` is "true", "false" or the path of a CA bundle on this server."""

    host: str
    token_id: str
    token_secret: str | None
    port: int = 8006
    verify_ssl: str = "true"
    ssh_user: str = "root"
    ssh_port: int = 22
    ssh_hosts: str = ""
    ssh_password: str | None = None


@dataclass(frozen=True)
class ClusterRow:
    """A cluster as the list shows it (never a secret): name, address, token id, SSH, records held."""

    name: str
    host: str | None
    port: int
    token_id: str | None
    verify_ssl: str
    ssh: str
    containers: int
    from_environment: bool


def list_clusters() -> list[ClusterRow]:
    """Every cluster with how many current container records it holds, ``default`` first."""
    counts = dict(db.session.execute(db.select(Container.cluster_id, func.count()).where(
        Container.lifecycle != "deleted").group_by(Container.cluster_id)).all())
    config = current_app.config
    rows = []
    for cluster in db.session.scalars(db.select(Cluster)):
        if cluster.is_default:
            token = config.get("PVE_TOKEN_NAME")
            token_id = token if not token or "!" in str(token) else f"{config.get('PVE_USER') or 'root@pam'}!{token}"
            rows.append(ClusterRow(cluster.name, config.get("PVE_HOST"), int(config.get("PVE_PORT") or 8006), token_id,
                                   _verify_text(config.get("PVE_VERIFY_SSL")),
                                   f"{config.get('SSH_USER') or 'root'}@…:{config.get('SSH_PORT') or 22}",
                                   counts.get(cluster.id, 0), True))
        else:
            rows.append(ClusterRow(cluster.name, cluster.host, cluster.port, cluster.token_id, cluster.verify_ssl,
                                   f"{cluster.ssh_user}@…:{cluster.ssh_port}", counts.get(cluster.id, 0), False))
    return sorted(rows, key=lambda row: (not row.from_environment, row.name))


def find_cluster(name: str) -> Cluster:
    """The cluster named ``name``; raises LookupError naming it when there is none."""
    cluster = db.session.scalar(db.select(Cluster).where(Cluster.name == name))
    if cluster is None:
        raise LookupError(f"No cluster is named “{name}”.")
    return cluster


def add_cluster(name: str, settings: ClusterSettings) -> Cluster:
    """Add cluster ``name`` (lower-case letters, digits and dashes; it becomes part of its pages' addresses).

    Raises ClusterError for a taken or malformed name or invalid settings (``validate``). No connection is
    made: ``check_cluster`` says whether Proxmox answers.
    """
    name = (name or "").strip()
    if not NAME_PATTERN.match(name):
        raise ClusterError("A cluster's name is 1 to 40 lower-case letters, digits and dashes, starting and ending "
                           "with a letter or digit (it becomes part of its pages' addresses).")
    if name == DEFAULT_CLUSTER or db.session.scalar(db.select(Cluster.id).where(Cluster.name == name)) is not None:
        raise ClusterError(f"A cluster named “{name}” already exists.")
    if settings.token_secret is None:
        raise ClusterError("Give the API token's secret.")
    cluster = Cluster(name=name)
    _apply(cluster, validate(settings))
    db.session.add(cluster)
    db.session.commit()
    forget_clusters()
    return cluster


def update_cluster(name: str, settings: ClusterSettings) -> Cluster:
    """Change cluster ``name``'s settings (its secrets only when given). The ``default`` cluster is set in the
    environment, not here. Raises LookupError, ClusterError."""
    cluster = find_cluster(name)
    if cluster.is_default:
        raise ClusterError("The default cluster is set by the PROXBOARD_PVE_* and PROXBOARD_SSH_* environment "
                           "variables; change them there.")
    _apply(cluster, validate(settings))
    db.session.commit()
    forget_clusters()
    return cluster


def remove_cluster(name: str) -> int:
    """Remove cluster ``name`` and Proxboard's records of its containers (history, credentials, services); the
    guests themselves are left alone in Proxmox. Returns how many current container records went (archived ones go
    too, uncounted, as ``list_clusters`` counts).

    Raises LookupError, and ClusterError for the default cluster or while one of its containers is being
    created (its job still works on it).
    """
    cluster = find_cluster(name)
    if cluster.is_default:
        raise ClusterError("The default cluster comes from the environment and cannot be removed.")
    records = list(db.session.scalars(db.select(Container).where(Container.cluster_id == cluster.id)))
    if any(record.lifecycle == "creating" for record in records):
        raise ClusterError(f"A container of “{name}” is being created; remove the cluster once it has finished.")
    for record in records:
        db.session.delete(record)
    db.session.delete(cluster)
    db.session.commit()
    forget_clusters()
    from app.proxmox import forget_cluster  # the client goes with the cluster

    forget_cluster(name)
    return sum(1 for record in records if record.lifecycle != "deleted")  # as the list counted them


def check_cluster(name: str) -> str:
    """Ask cluster ``name``'s Proxmox for its version (GET /version); returns "pve-manager 9.1.1 (release 9.1)".

    Raises LookupError, ProxmoxError (unreachable, token refused, …) with its message.
    """
    from app.proxmox import get_proxmox

    version = get_proxmox(name).version()
    return f"pve-manager {version.version} (release {version.release})"


def validate(settings: ClusterSettings) -> ClusterSettings:
    """``settings`` trimmed, or ClusterError naming the first thing wrong."""
    host = (settings.host or "").strip()
    if not _is_host(host):
        raise ClusterError(f"“{host}” is not a host name or IP address.")
    token_id = (settings.token_id or "").strip()
    if not TOKEN_ID.match(token_id):
        raise ClusterError("The API token id is user@realm!tokenname, as the Proxmox GUI shows it "
                           "(Datacenter → Permissions → API Tokens).")
    if settings.token_secret is not None and not settings.token_secret.strip():
        raise ClusterError("Give the API token's secret.")
    for label, port in (("Proxmox port", settings.port), ("SSH port", settings.ssh_port)):
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise ClusterError(f"The {label} is a number from 1 to 65535.")
    verify = (settings.verify_ssl or "true").strip()
    if verify.lower() not in ("true", "false") and not os.path.isfile(verify):
        raise ClusterError(f"Certificate check: “true”, “false” or the path of a CA bundle on this server; "
                           f"{verify} is not a file.")
    ssh_user = (settings.ssh_user or "root").strip()
    if not re.fullmatch(r"[a-z_][a-z0-9_.-]{0,31}", ssh_user):
        raise ClusterError(f"“{ssh_user}” is not a user name.")
    try:
        hosts = parse_hosts(settings.ssh_hosts or "")
    except SSHConfigError as exc:
        raise ClusterError(f"SSH hosts: {exc}; write node=address, separated by commas.") from exc
    for node, address in hosts.items():
        if not _is_host(address):
            raise ClusterError(f"SSH hosts: “{address}” (node {node}) is not a host name or IP address.")
    return ClusterSettings(host, token_id, settings.token_secret.strip() if settings.token_secret else None,
                           settings.port, verify.lower() if verify.lower() in ("true", "false") else verify, ssh_user,
                           settings.ssh_port, ",".join(f"{node}={address}" for node, address in hosts.items()),
                           settings.ssh_password or None)


def _verify_text(value: object) -> str:
    """The environment's PVE_VERIFY_SSL as a cluster's row says it ("true", "false" or a CA bundle's path), read as
    the Proxmox client reads it."""
    verify = read_verify_ssl(value)
    return "true" if verify is True else "false" if verify is False else verify


def _is_host(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return bool(HOSTNAME.match(text))


def _apply(cluster: Cluster, settings: ClusterSettings) -> None:
    vault = get_vault()
    cluster.host, cluster.port, cluster.token_id = settings.host, settings.port, settings.token_id
    cluster.verify_ssl, cluster.ssh_user, cluster.ssh_port = settings.verify_ssl, settings.ssh_user, settings.ssh_port
    cluster.ssh_hosts = settings.ssh_hosts or None
    if settings.token_secret is not None:
        cluster.token_secret_encrypted = vault.encrypt(settings.token_secret)
    if settings.ssh_password is not None:
        cluster.ssh_password_encrypted = vault.encrypt(settings.ssh_password)
