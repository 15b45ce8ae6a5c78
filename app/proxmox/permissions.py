"""Which Proxmox privileges each Proxboard feature needs, checked against what the token has.

The privileges follow the ``permissions`` of each endpoint in the PVE 9.1 / 8.4 API schema
(``check: ["perm", "/vms/{vmid}", ["VM.PowerMgmt"]]``); what the token has comes from
``GET /access/permissions`` (pve-access-control ``API2/AccessControl.pm``: the effective
privileges per ACL path, which propagate down the path tree).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Requirement:
    """One privilege a feature needs on one ACL path, and what goes missing without it."""

    feature: str
    privilege: str
    path: str
    without: str


REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement("See containers", "VM.Audit", "/vms",
                "containers are left out of the dashboard (Proxmox hides guests the token may not audit); "
                "no status, configuration or addresses"),
    Requirement("Start, shutdown, stop, restart", "VM.PowerMgmt", "/vms", "the lifecycle actions are refused"),
    Requirement("Delete containers", "VM.Allocate", "/vms", "Delete is refused"),
    Requirement("Create containers", "VM.Allocate", "/vms", "the wizard's Create is refused"),
    Requirement("Create containers: disks", "Datastore.AllocateSpace", "/storage",
                "no root disk can be allocated; storages are not offered"),
    Requirement("Create containers: OS templates", "Datastore.Audit", "/storage",
                "the wizard lists no OS templates"),
    Requirement("Create containers: networks", "SDN.Use", "/sdn/zones",
                "the container cannot be attached to a bridge (PVE 8+)"),
    Requirement("Node figures", "Sys.Audit", "/nodes", "node status and other users' tasks cannot be read"),
    Requirement("Snapshots: take, delete, roll back", "VM.Snapshot", "/vms",
                "the Snapshots tab's actions are refused (rolling back alone also works with VM.Snapshot.Rollback)"),
    Requirement("Clone containers", "VM.Clone", "/vms",
                "Clone is refused (the clone also needs VM.Allocate for its new VMID, "
                "and Datastore.AllocateSpace for its disks)"),
    Requirement("Migrate containers", "VM.Migrate", "/vms", "Migrate is refused"),
    Requirement("Convert to template", "VM.Allocate", "/vms", "Convert to template is refused"),
    Requirement("Backups: back up now, restore over a container", "VM.Backup", "/vms",
                "Back up now and restoring over an existing container are refused"),
    Requirement("Backups: list and write backup storages", "Datastore.AllocateSpace", "/storage",
                "backups cannot be listed, written or deleted (listing alone also works with Datastore.Audit)"),
    Requirement("Backup jobs and coverage", "Sys.Audit", "/",
                "the Backups page cannot show the scheduled jobs or which containers no job covers"),
    Requirement("Config tab: cores and CPU limit", "VM.Config.CPU", "/vms", "cores and the CPU limit cannot be changed"),
    Requirement("Config tab: memory and swap", "VM.Config.Memory", "/vms", "memory and swap cannot be changed"),
    Requirement("Config tab: network interfaces", "VM.Config.Network", "/vms",
                "network interfaces cannot be added, changed or removed"),
    Requirement("Config tab: boot, startup order, tags and notes", "VM.Config.Options", "/vms",
                "start on boot, the startup order, tags and notes cannot be changed"),
    Requirement("Config tab: nesting", "VM.Allocate", "/vms", "nesting cannot be turned on or off"),
    Requirement("Disks tab: grow a disk, add a mount point", "VM.Config.Disk", "/vms",
                "disks cannot be grown and no mount point can be added (both also need Datastore.AllocateSpace "
                "on the disk's storage)"),
    Requirement("Web console", "VM.Console", "/vms",
                "the console cannot be opened (an API token also needs Proxmox VE 9.0.13 or later)"),
    Requirement("Privileged containers (PVE 9.x)", "Sys.Modify", "/",
                "creating a privileged container is refused (unprivileged ones are not affected)"),
)


def has_privilege(permissions: Mapping[str, frozenset[str]], privilege: str, path: str) -> bool:
    """True when ``privilege`` holds on ``path`` or on any parent path in ``permissions``.

    ``permissions`` maps ACL paths to privilege names (``ProxmoxClient.permissions()``). A privilege
    on ``/vms`` covers ``/vms/101``; one on ``/`` covers everything (ACLs propagate by default).
    Privileges only on some children (``/vms/101``) do not cover ``/vms``.
    """
    parts = [part for part in path.split("/") if part]
    for depth in range(len(parts), -1, -1):
        candidate = "/" + "/".join(parts[:depth])
        if privilege in permissions.get(candidate, frozenset()):
            return True
    return False


def partly_granted(permissions: Mapping[str, frozenset[str]], privilege: str, path: str) -> bool:
    """True when ``privilege`` is granted on some path below ``path`` (e.g. on single guests)."""
    prefix = path.rstrip("/") + "/"
    return any(privilege in privs for p, privs in permissions.items() if p.startswith(prefix))


@dataclass(frozen=True, slots=True)
class Check:
    """A requirement and whether the token meets it: ``granted``, ``partial`` or ``missing``."""

    requirement: Requirement
    state: str


def check_requirements(permissions: Mapping[str, frozenset[str]]) -> list[Check]:
    """Every requirement with its state for the given permissions."""
    checks = []
    for req in REQUIREMENTS:
        if has_privilege(permissions, req.privilege, req.path):
            state = "granted"
        elif partly_granted(permissions, req.privilege, req.path):
            state = "partial"
        else:
            state = "missing"
        checks.append(Check(req, state))
    return checks
