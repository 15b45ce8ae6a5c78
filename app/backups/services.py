"""Backup coverage across the cluster: what each scheduled job selects, and which containers are left out.

Four Proxmox reads, in parallel under the request's deadline: the jobs (GET /cluster/backup), the
guests no job selects (GET /cluster/backup-info/not-backed-up), the containers with their node and
pool (the cached /cluster/resources snapshot), and the cluster-wide backup index (waited for when it
is not loaded yet). Proxmox counts a disabled job as covering its guests; those containers are listed
apart, worked out with ``BackupJob.selects``. A read that fails shows what Proxmox last said (kept per
process) with when, or an error in that part of the page; ``coverage_report`` never raises.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flask import current_app

from app.clusters import cluster_state
from app.containers.coverage import BackupAge, age_in, warn_seconds
from app.proxmox import BackupJob, ContainerSummary, ProxmoxError, get_proxmox
from app.proxmox.deadline import settle

LISTED_VMIDS = 6  # VMIDs a job's selection names before "and N more"
PARTS = ("jobs", "uncovered", "containers", "index")


@dataclass(frozen=True)
class JobRow:
    """One scheduled backup job as the jobs table shows it."""

    job: BackupJob
    selection: str  # "All containers except CT 105, 115", "CT 105, 115", "Pool web"
    selection_title: str  # every VMID, when ``selection`` names only the first ones
    selected: int | None  # containers it selects now (None when the containers are unknown)
    next_run: datetime | None


@dataclass(frozen=True)
class Guest:
    """A container in one of the coverage lists."""

    vmid: int
    name: str
    node: str | None
    template: bool = False
    age: BackupAge | None = None
    jobs: tuple[str, ...] = ()  # the disabled jobs that would back it up


@dataclass
class CoverageReport:
    """The Backups page. A list is None when what it needs could not be read (see ``errors``)."""

    jobs: list[JobRow] | None = None
    total: int | None = None  # containers in the cluster
    uncovered: list[Guest] | None = None
    disabled_only: list[Guest] | None = None
    not_recent: list[Guest] | None = None
    warn_days: float = 7
    errors: dict[str, str] = field(default_factory=dict)  # part -> why it could not be read
    last_known: dict[str, datetime] = field(default_factory=dict)  # part -> when Proxmox said what is shown
    index_at: datetime | None = None  # when the backup index was swept
    index_failed: tuple[str, ...] = ()  # storages the last sweep could not read


def coverage_report() -> CoverageReport:
    """Read the four parts (see the module docstring) and work out the jobs table and the three lists."""
    pve = get_proxmox()
    report = CoverageReport(warn_days=warn_seconds() / 86400)
    if pve.settings is None:
        report.errors["jobs"] = "Proxmox is not configured (set PROXBOARD_PVE_HOST and a token)."
        return report
    reads: dict[str, Callable[[], object]] = {
        "jobs": pve.backup_jobs, "uncovered": pve.not_backed_up, "containers": pve.cluster_snapshot,
        "index": lambda: pve.backup_index(wait=True),
    }
    values = _with_last_known(report, dict(zip(PARTS, settle(*reads.values()))))
    jobs, uncovered, snapshot, index = (values.get(part) for part in PARTS)
    containers: list[ContainerSummary] | None = list(snapshot.containers) if snapshot is not None else None
    if containers is not None:
        report.total = len(containers)
    if jobs is not None:
        report.jobs = [_job_row(job, containers) for job in jobs]
    if uncovered is not None and containers is not None:
        by_vmid = {ct.vmid: ct for ct in containers}
        report.uncovered = [_guest(by_vmid.get(vmid), vmid) for vmid in uncovered]
    if jobs is not None and uncovered is not None and containers is not None:
        report.disabled_only = _disabled_only(jobs, set(uncovered), containers)
    if index is not None and containers is not None:
        report.index_at, report.index_failed = datetime.fromtimestamp(index.loaded_at, UTC), index.failed
        now, warn = time.time(), warn_seconds()
        ages = ((ct, age_in(index, ct.vmid, now, warn)) for ct in containers)
        stale = [_guest(ct, ct.vmid, age=age) for ct, age in ages if age.state in ("none", "old")]
        report.not_recent = sorted(stale, key=lambda g: (g.age.newest is not None, g.age.newest, g.vmid))
    return report


def _with_last_known(report: CoverageReport, outcomes: dict[str, object]) -> dict[str, object]:
    """Each part's value; a part Proxmox failed to give is its last known value (noted) or None (an error)."""
    kept: dict[str, tuple[object, datetime]] = cluster_state("backup_coverage", dict)
    values: dict[str, object] = {}
    for part, outcome in outcomes.items():
        if isinstance(outcome, ProxmoxError):
            report.errors[part] = outcome.message
            if part in kept:
                values[part], report.last_known[part] = kept[part]
            continue
        if isinstance(outcome, Exception):
            raise outcome
        kept[part] = (outcome, datetime.now(UTC))
        values[part] = outcome
    return values


def _job_row(job: BackupJob, containers: list[ContainerSummary] | None) -> JobRow:
    selected = None
    if containers is not None:
        selected = sum(1 for ct in containers if job.selects(ct.vmid, ct.node, ct.pool))
    text, title = describe_selection(job)
    next_run = datetime.fromtimestamp(job.next_run, UTC) if job.next_run else None
    return JobRow(job, text, title, selected, next_run)


def describe_selection(job: BackupJob) -> tuple[str, str]:
    """What a job selects in words, and every VMID it names (for a tooltip when the words name only some).

    ``All containers except CT 105, 115``, ``CT 105, 115``, ``Pool web``, with `` on node pve1`` when the
    job is restricted to a node.
    """
    named = job.exclude if job.all else job.vmids
    listed, title = _vmids(named), ", ".join(map(str, named))
    if job.all:
        text = "All containers" + (f" except CT {listed}" if named else "")
    elif job.vmids:
        text = f"CT {listed}"
    elif job.pool:
        text = f"Pool {job.pool}"
    else:
        text = "No guests"
    if job.node:
        text += f" on node {job.node}"
    return text, title


def _vmids(vmids: Iterable[int]) -> str:
    vmids = list(vmids)
    shown = ", ".join(map(str, vmids[:LISTED_VMIDS]))
    more = len(vmids) - LISTED_VMIDS
    return f"{shown} and {more} more" if more > 0 else shown


def _guest(ct: ContainerSummary | None, vmid: int, **extra) -> Guest:
    if ct is None:  # Proxmox named it, but the snapshot does not list it (another node, not visible)
        return Guest(vmid, f"CT {vmid}", None, **extra)
    return Guest(vmid, ct.name or f"CT{vmid}", ct.node, ct.template, **extra)


def _disabled_only(jobs: Iterable[BackupJob], uncovered: set[int],
                   containers: list[ContainerSummary]) -> list[Guest]:
    """Containers Proxmox counts as covered although every job that selects them is disabled."""
    enabled = [job for job in jobs if job.enabled]
    disabled = [job for job in jobs if not job.enabled]
    found = []
    for ct in containers:
        if ct.vmid in uncovered or any(job.selects(ct.vmid, ct.node, ct.pool) for job in enabled):
            continue
        paused = tuple(job.id for job in disabled if job.selects(ct.vmid, ct.node, ct.pool))
        if paused:
            found.append(_guest(ct, ct.vmid, jobs=paused))
    return found
