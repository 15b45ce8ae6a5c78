"""Bulk actions: start, shut down, stop or restart many containers, or add or remove a tag, in one request.

A bulk action is a ``BulkOperation`` with one ``BulkItem`` per container. Lifecycle actions become ordinary
``Operation``s (each card shows its spinner, each records its events and audit entry), started a few at a time
(``AT_ONCE``) through ``containers.services.request_action`` and settled by ``refresh_operation``. On PVE 9.1 and
later, start and shutdown go to Proxmox as ONE task (``POST /cluster/bulk-action/guest/start|shutdown``): the
per-container operations then have no task of their own, and ``advance`` reads each guest's result from that
task's log and the guests' state (``proxmox_task``). Tags are written per container (``PUT …/config``), a few per
step.

A selection over several clusters is one ``BulkOperation`` per cluster, its "part" (``start_bulk``): each part
asks its own cluster's Proxmox (its one task on 9.1, or per container on 8.4) and is advanced under that cluster
(``use_cluster``), so a cluster that does not answer refuses or holds up only its own part. The parts of one
request share a ``group_id`` and are shown together.

Nothing runs in the background of a request: ``advance`` moves a bulk action one step (settle what ended, start
what may start, end it with one summary), and is called by the progress panel's poll, by the page without
JavaScript and by the jobs sweep, so it goes on across reloads, in any process, even while nobody watches. A
lease on the row lets one process at a time advance it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, select, update

from app import audit
from app.bulk.proxmox_task import AT_ONCE, PROXMOX_BULK, follow_proxmox_task, has_bulk_endpoint, send_to_proxmox
from app.bulk.selection import BulkRefused, Selection, resolve, several_clusters, unreachable_reason
from app.clusters import use_cluster
from app.container_templates.services import TAG_RE
from app.containers.services import ActionRefused, Outcome, get_or_create_record, refresh_operation, request_action
from app.events import record_event
from app.extensions import db
from app.models import BulkItem, BulkOperation, Operation, cluster_id_of, utcnow
from app.proxmox import ProxmoxError, get_proxmox

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=30)  # how long one process may advance a bulk action before another may take over
RECENT = timedelta(minutes=10)  # a finished bulk action stays on its requester's dashboard this long


@dataclass(frozen=True)
class BulkAction:
    """What a bulk action is called, and how its summary reads."""

    name: str
    label: str
    icon: str
    done: str  # "Stopped 9 of 10 containers"
    danger: bool = False
    tag: bool = False

    def phrase(self, count: int, tag: str | None = None, cluster: str | None = None) -> str:
        """What is done, in words: "Shut down 6 containers", "Add the tag “web” to 3 containers on lab"."""
        what = f"{count} container{'s' if count != 1 else ''}{f' on {cluster}' if cluster else ''}"
        if self.name == "tag-add":
            return f"Add the tag “{tag}” to {what}"
        if self.name == "tag-remove":
            return f"Remove the tag “{tag}” from {what}"
        return f"{'Shut down' if self.name == 'shutdown' else self.label} {what}"

    def question(self, count: int, tag: str | None = None) -> str:
        """The confirmation's question: "Shut down 6 containers?", "Add the tag “web” to 3 containers?"."""
        return f"{self.phrase(count, tag)}?"


BULK_ACTIONS: dict[str, BulkAction] = {
    "start": BulkAction("start", "Start", "bi-play-fill", "Started"),
    "shutdown": BulkAction("shutdown", "Shutdown", "bi-power", "Shut down"),
    "stop": BulkAction("stop", "Stop", "bi-stop-fill", "Stopped", danger=True),
    "reboot": BulkAction("reboot", "Restart", "bi-arrow-clockwise", "Restarted"),
    "tag-add": BulkAction("tag-add", "Add tag", "bi-tag", "Tagged", tag=True),
    "tag-remove": BulkAction("tag-remove", "Remove tag", "bi-x-lg", "Untagged", tag=True),
}


def check_tag(action: str, tag: str | None) -> str | None:
    """The tag a tag action needs, checked against Proxmox's tag format; BulkRefused when it does not fit."""
    if not BULK_ACTIONS[action].tag:
        return None
    tag = (tag or "").strip()
    if not tag:
        raise BulkRefused("Type the tag to add or remove.")
    tag = tag.lower()  # Proxmox keeps tags in lower case
    if len(tag) > 64 or not TAG_RE.match(tag):
        raise BulkRefused("A tag is letters, digits and _ - + . (not starting with - + or .), at most 64 characters.")
    return tag


def start_bulk(action: str, selection: Selection, username: str, tag: str | None = None) -> list[BulkOperation]:
    """Record a bulk ``action`` over the containers ``selection`` names, one part per cluster (the default cluster
    first), and take each part's first step under its cluster; returns the parts.

    Start and shutdown go to Proxmox's bulk-action endpoint on a PVE 9.1+ cluster (one task per part); everything
    else, and everything on 8.4, goes per container, ``AT_ONCE`` at a time. The part of a cluster whose Proxmox
    does not answer is recorded as refused (each of its containers failed with the reason, nothing asked); the
    others go on. Raises BulkRefused (nothing changes) for an unknown action, a bad tag or an empty selection,
    and when no cluster of the selection can be reached.
    """
    if action not in BULK_ACTIONS:
        raise BulkRefused(f"Unknown bulk action {action!r}.")
    tag = check_tag(action, tag)
    resolved = resolve(selection)
    parts = resolved.parts
    if all(name in resolved.unreachable for name in parts):
        raise BulkRefused(unreachable_reason(*parts))
    bulks: list[BulkOperation] = []
    for name, views in parts.items():
        bulk = BulkOperation(cluster_id=cluster_id_of(name), action=action, tag=tag, state="running",
                             requested_by=username, selection=selection.words(len(views))[:255])
        bulk.items = [BulkItem(position=i, vmid=view.vmid, name=(view.name or f"CT {view.vmid}")[:255], state="queued")
                      for i, view in enumerate(views)]
        db.session.add(bulk)
        db.session.flush()
        bulk.group_id = bulks[0].id if bulks else bulk.id
        bulks.append(bulk)
    db.session.commit()
    for bulk, (name, views) in zip(bulks, parts.items()):
        if name in resolved.unreachable:
            _refuse(bulk, unreachable_reason(name))
            continue
        try:
            with use_cluster(name):
                if action in PROXMOX_BULK and has_bulk_endpoint():
                    send_to_proxmox(bulk, {view.vmid: view for view in views})
            advance(bulk)
        except ProxmoxError as exc:  # this part goes on at the next poll or sweep; the others go on now
            db.session.rollback()
            log.warning("bulk action %s on %s: Proxmox cannot be asked now: %s", bulk.id, name, exc.message)
    return bulks


def _refuse(bulk: BulkOperation, reason: str) -> None:
    """End ``bulk`` without asking Proxmox: each container failed with ``reason``."""
    for item in bulk.items:
        item.state, item.reason = "failed", reason
    db.session.commit()
    _finish(bulk)


def advance(bulk: BulkOperation) -> Outcome | None:
    """Move ``bulk`` one step under its cluster: settle the containers whose action ended, start the next ones,
    and once every container is dealt with, end it with one summary. Returns that summary when it ended in this
    call (None otherwise, also when another process is advancing it right now). Raises ProxmoxError when its
    cluster's Proxmox cannot be asked now (nothing is lost: the next step asks again)."""
    if not bulk.pending or not _take_lease(bulk):
        return None
    try:
        with use_cluster(bulk.cluster.name):
            if bulk.upid:
                follow_proxmox_task(bulk)
            else:
                _settle_running(bulk)
                _start_queued(bulk)
        if all(item.ended for item in bulk.items):
            return _finish(bulk)
        return None
    finally:
        if bulk.pending:
            bulk.lease_until = None
            db.session.commit()


def _take_lease(bulk: BulkOperation) -> bool:
    now = utcnow()
    taken = db.session.execute(
        update(BulkOperation).where(BulkOperation.id == bulk.id, BulkOperation.state == "running",
                                    or_(BulkOperation.lease_until.is_(None), BulkOperation.lease_until < now))
        .values(lease_until=now + LEASE).execution_options(synchronize_session=False)).rowcount == 1
    db.session.commit()
    if taken:
        db.session.refresh(bulk)
    return taken


def _settle_running(bulk: BulkOperation) -> None:
    for item in bulk.items:
        if item.state != "running" or item.operation_id is None:
            continue
        operation = db.session.get(Operation, item.operation_id)
        if operation is not None and operation.pending:
            refresh_operation(operation)
        if operation is None or not operation.pending:
            item.state = "succeeded" if operation is not None and operation.state == "succeeded" else "failed"
            item.reason = operation.error if operation is not None else "Its record was removed."
            db.session.commit()


def _start_queued(bulk: BulkOperation) -> None:
    running = sum(1 for item in bulk.items if item.state == "running")
    for item in [item for item in bulk.items if item.state == "queued"][:max(0, AT_ONCE - running)]:
        if BULK_ACTIONS[bulk.action].tag:
            _retag(bulk, item)
            continue
        item.state = "running"
        db.session.commit()  # request_action commits or rolls back the session: this item's state goes first
        try:
            operation = request_action(item.vmid, bulk.action, bulk.requested_by or "")
        except ActionRefused as exc:
            # refused before Proxmox was asked (already running, locked, busy): skipped; refused by Proxmox: failed
            state = "failed" if isinstance(exc.__cause__, ProxmoxError) else "skipped"
            item.state, item.reason = state, exc.message
        except ProxmoxError as exc:
            item.state, item.reason = "failed", exc.message
        else:
            item.operation_id = operation.id
            operation.params = {**(operation.params or {}), "bulk": bulk.id}  # its card leaves the polling to the panel
        db.session.commit()


def _retag(bulk: BulkOperation, item: BulkItem) -> None:
    """Add or remove ``bulk.tag`` on one container (PUT …/config ``tags``); skipped when there is nothing to do."""
    pve = get_proxmox()
    try:
        node = pve.find_container_node(item.vmid)
        if node is None:
            raise ActionRefused("Proxmox no longer lists it.")
        config = pve.container_config(node, item.vmid)
        tags = list(config.tags)
        has = bulk.tag in (tag.lower() for tag in tags)
        if (bulk.action == "tag-add") == has:
            item.state, item.reason = "skipped", f"It {'already has' if has else 'does not have'} the tag {bulk.tag}."
            db.session.commit()
            return
        tags = [*tags, bulk.tag] if bulk.action == "tag-add" else [tag for tag in tags if tag.lower() != bulk.tag]
        pve.set_tags(node, item.vmid, tags)
    except ActionRefused as exc:
        item.state, item.reason = "skipped", exc.message
    except ProxmoxError as exc:
        item.state, item.reason = "failed", exc.message
    else:
        item.state = "succeeded"
        container = get_or_create_record(pve.container_status(node, item.vmid))
        verb = "added to" if bulk.action == "tag-add" else "removed from"
        message = f"Tag {bulk.tag} {verb} {item.name} (CT {item.vmid}) by {bulk.requested_by} (bulk action)."
        record_event(container.id, "complete", message, {"action": bulk.action, "tag": bulk.tag, "bulk": bulk.id})
        audit.record(f"container.{bulk.action}", container=container, username=bulk.requested_by, channel="worker",
                     target=audit.container_target(container), detail={"tag": bulk.tag, "bulk": bulk.id})
    db.session.commit()


def _finish(bulk: BulkOperation) -> Outcome | None:
    """End ``bulk`` with its one summary; None when another process ended it first."""
    summary, category = summarize(bulk)
    ended = db.session.execute(
        update(BulkOperation).where(BulkOperation.id == bulk.id, BulkOperation.state == "running")
        .values(state="finished", finished_at=utcnow(), summary=summary, lease_until=None)
        .execution_options(synchronize_session=False)).rowcount == 1
    db.session.commit()
    db.session.refresh(bulk)
    if not ended:
        return None
    log.info("bulk action %s ended: %s", bulk.id, summary)
    return Outcome(summary, category)


def summarize(bulk: BulkOperation) -> tuple[str, str]:
    """The one sentence telling how a bulk action went ("Stopped 9 of 10 containers; 1 failed: …"), and
    its toast category."""
    spec = BULK_ACTIONS[bulk.action]
    items = bulk.items
    done = [item for item in items if item.state == "succeeded"]
    failed = [item for item in items if item.state == "failed"]
    skipped = [item for item in items if item.state == "skipped"]
    what = f" with {bulk.tag}" if bulk.action == "tag-add" else (f" (tag {bulk.tag})" if spec.tag else "")
    where = f" on {bulk.cluster.name}" if several_clusters() else ""
    reasons = {item.reason for item in failed}
    if len(failed) > 1 and len(failed) == len(items) and len(reasons) == 1:  # one cause for all: a cluster not answering
        return f"{spec.done} 0 of {len(items)} containers{where}{what}: {reasons.pop() or 'no reason given'}", "danger"
    parts = [f"{spec.done} {len(done)} of {len(items)} container{'s' if len(items) != 1 else ''}{where}{what}"]
    for word, some in (("failed", failed), ("skipped", skipped)):
        if some:
            parts.append(f"{len(some)} {word}: " + "; ".join(f"{item.name} (CT {item.vmid}): "
                                                           f"{(item.reason or 'no reason given').rstrip('.')}"
                                                           for item in some[:3]) + _more(some, 3))
    category = "danger" if failed and not done else ("warning" if failed or skipped else "success")
    return "; ".join(parts) + ".", category


def summarize_ended(bulks: list[BulkOperation]) -> tuple[str, str] | None:
    """One toast for the parts of ``bulks`` that have ended: their summaries and the gravest category; None
    while every part runs."""
    ended = [summarize(bulk) for bulk in bulks if not bulk.pending]
    if not ended:
        return None
    order = ("success", "warning", "danger")
    return " ".join(message for message, _ in ended), max((category for _, category in ended), key=order.index)


def _more(items: list, shown: int) -> str:
    return f" and {len(items) - shown} more" if len(items) > shown else ""


def get(bulk_id: int) -> BulkOperation | None:
    """The bulk action ``bulk_id``, or None."""
    return db.session.get(BulkOperation, bulk_id)


def group_of(bulk: BulkOperation) -> list[BulkOperation]:
    """``bulk`` and the other parts of the request that started it (one per cluster), in their order."""
    if bulk.group_id is None:
        return [bulk]
    return list(db.session.scalars(select(BulkOperation).where(BulkOperation.group_id == bulk.group_id)
                                   .order_by(BulkOperation.id)))


def on_dashboard(username: str | None) -> list[BulkOperation]:
    """The bulk actions a dashboard shows: every running one, and ``username``'s finished within ``RECENT``
    (the latest few; a request over several clusters is a part each)."""
    recent = utcnow() - RECENT
    return list(db.session.scalars(select(BulkOperation).where(or_(
        BulkOperation.state == "running",
        (BulkOperation.requested_by == username) & (BulkOperation.finished_at > recent),
    )).order_by(BulkOperation.id.desc()).limit(8)))


def advance_each(bulks: list[BulkOperation]) -> list[Outcome]:
    """Advance each of ``bulks`` one step; a cluster that cannot be asked now holds up only its own part.
    Returns the summaries of the parts that ended now."""
    ended = []
    for bulk in bulks:
        try:
            outcome = advance(bulk)
        except ProxmoxError as exc:
            db.session.rollback()
            log.warning("bulk action %s: Proxmox cannot be asked now: %s", bulk.id, exc.message)
            continue
        if outcome is not None:
            ended.append(outcome)
    return ended


def advance_all() -> int:
    """Advance every running bulk action one step (the jobs sweep: they go on while nobody watches); returns
    how many ended."""
    return len(advance_each(db.session.scalars(select(BulkOperation).where(BulkOperation.state == "running")).all()))
