"""Bulk actions: start, shut down, stop or restart many containers, or add or remove a tag, in one request.

A bulk action is a ``BulkOperation`` with one ``BulkItem`` per container. Lifecycle actions become ordinary
``Operation``s (each card shows its spinner, each records its events and audit entry), started a few at a time
(``AT_ONCE``) through ``containers.services.request_action`` and settled by ``refresh_operation``. On PVE 9.1 and
later, start and shutdown go to Proxmox as ONE task (``POST /cluster/bulk-action/guest/start|shutdown``): the
per-container operations then have no task of their own, and ``advance`` reads each guest's result from that
task's log and the guests' state (``proxmox_task``). Tags are written per container (``PUT …/config``), a few per
step.

Nothing runs in the background of a request: ``advance`` moves a bulk action one step (settle what ended, start
what may start, end it with one summary), and is called by the progress panel's poll, by the page without
JavaScript and by the jobs sweep, so it goes on across reloads, in any process, even while nobody watches. A
lease on the row lets one process at a time advance it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import or_, select, update

from app import audit
from app.bulk.proxmox_task import AT_ONCE, PROXMOX_BULK, follow_proxmox_task, has_bulk_endpoint, send_to_proxmox
from app.container_templates.services import TAG_RE
from app.containers.coverage import narrow, parse_search
from app.containers.inventory import ContainerView, load_inventory
from app.containers.services import ActionRefused, Outcome, get_or_create_record, refresh_operation, request_action
from app.events import record_event
from app.extensions import db
from app.models import BulkItem, BulkOperation, Operation, utcnow
from app.proxmox import ProxmoxError, get_proxmox

log = logging.getLogger(__name__)

MAX_CONTAINERS = 1000
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

    def question(self, count: int, tag: str | None = None) -> str:
        """The confirmation's question: "Shut down 6 containers?", "Add the tag “web” to 3 containers?"."""
        what = f"{count} container{'s' if count != 1 else ''}"
        if self.name == "tag-add":
            return f"Add the tag “{tag}” to {what}?"
        if self.name == "tag-remove":
            return f"Remove the tag “{tag}” from {what}?"
        return f"{'Shut down' if self.name == 'shutdown' else self.label} {what}?"


BULK_ACTIONS: dict[str, BulkAction] = {
    "start": BulkAction("start", "Start", "bi-play-fill", "Started"),
    "shutdown": BulkAction("shutdown", "Shutdown", "bi-power", "Shut down"),
    "stop": BulkAction("stop", "Stop", "bi-stop-fill", "Stopped", danger=True),
    "reboot": BulkAction("reboot", "Restart", "bi-arrow-clockwise", "Restarted"),
    "tag-add": BulkAction("tag-add", "Add tag", "bi-tag", "Tagged", tag=True),
    "tag-remove": BulkAction("tag-remove", "Remove tag", "bi-x-lg", "Untagged", tag=True),
}


class BulkRefused(Exception):
    """The bulk action cannot be done; ``message`` says why, and nothing was changed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Selection:
    """Which containers: the checked ``vmids``, or ``everything`` matching the dashboard's ``status`` and ``query``."""

    vmids: tuple[int, ...] = ()
    everything: bool = False
    status: str = "all"
    query: str = ""


@dataclass
class Resolved:
    """The containers a selection names now, and the selection in words."""

    views: list[ContainerView]
    words: str
    reachable: bool = True
    missing: list[int] = field(default_factory=list)


def resolve(selection: Selection) -> Resolved:
    """The containers ``selection`` names, resolved on the server from the live inventory: "all matching"
    applies the dashboard's own filter and search now, not the cards a page happened to show.

    Raises BulkRefused when the search cannot be applied (its backup term cannot be told) or nothing is chosen.
    """
    inventory = load_inventory(settle=refresh_operation)
    if selection.everything:
        search = parse_search(selection.query)
        entries = narrow(inventory.filtered(selection.status, search.text), search)
        if search.problem:
            raise BulkRefused(search.problem)
        status = "" if selection.status == "all" else f"{selection.status} "
        matching = f" matching “{selection.query}”" if selection.query else ""
        views = inventory.views(entries)
        resolved = Resolved(views, f"all {len(views)} {status}containers{matching}", inventory.reachable)
    else:
        wanted = set(selection.vmids)
        views = inventory.views([entry for entry in inventory.entries if entry[0] in wanted])
        found = {view.vmid for view in views}
        resolved = Resolved(views, f"{len(views)} selected container{'s' if len(views) != 1 else ''}",
                            inventory.reachable, sorted(wanted - found))
    if not resolved.views:
        raise BulkRefused("No container matches this filter." if selection.everything else
                          "Select at least one container.")
    if len(resolved.views) > MAX_CONTAINERS:
        raise BulkRefused(f"At most {MAX_CONTAINERS} containers can be acted on at once; narrow the filter.")
    return resolved


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


def start_bulk(action: str, selection: Selection, username: str, tag: str | None = None) -> BulkOperation:
    """Record a bulk ``action`` over the containers ``selection`` names and take its first step.

    Start and shutdown go to Proxmox's bulk-action endpoint on PVE 9.1+ (one task); everything else, and
    everything on 8.4, goes per container, ``AT_ONCE`` at a time. Raises BulkRefused (nothing changes) for an
    unknown action, a bad tag or an empty selection, and when Proxmox cannot be reached.
    """
    if action not in BULK_ACTIONS:
        raise BulkRefused(f"Unknown bulk action {action!r}.")
    tag = check_tag(action, tag)
    resolved = resolve(selection)
    if not resolved.reachable:
        raise BulkRefused("Proxmox cannot be reached; nothing was done.")
    bulk = BulkOperation(action=action, tag=tag, state="running", requested_by=username,
                         selection=resolved.words[:255])
    bulk.items = [BulkItem(position=i, vmid=view.vmid, name=(view.name or f"CT {view.vmid}")[:255], state="queued")
                  for i, view in enumerate(resolved.views)]
    db.session.add(bulk)
    db.session.commit()
    if action in PROXMOX_BULK and has_bulk_endpoint():
        send_to_proxmox(bulk, {view.vmid: view for view in resolved.views})
    advance(bulk)
    return bulk


def advance(bulk: BulkOperation) -> Outcome | None:
    """Move ``bulk`` one step: settle the containers whose action ended, start the next ones, and once every
    container is dealt with, end it with one summary. Returns that summary when it ended in this call (None
    otherwise, also when another process is advancing it right now)."""
    if not bulk.pending or not _take_lease(bulk):
        return None
    try:
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
    parts = [f"{spec.done} {len(done)} of {len(items)} container{'s' if len(items) != 1 else ''}{what}"]
    for word, some in (("failed", failed), ("skipped", skipped)):
        if some:
            parts.append(f"{len(some)} {word}: " + "; ".join(f"{item.name} (CT {item.vmid}): "
                                                           f"{(item.reason or 'no reason given').rstrip('.')}"
                                                           for item in some[:3]) + _more(some, 3))
    category = "danger" if failed and not done else ("warning" if failed or skipped else "success")
    return "; ".join(parts) + ".", category


def _more(items: list, shown: int) -> str:
    return f" and {len(items) - shown} more" if len(items) > shown else ""


def names(views_or_items, shown: int = 5) -> str:
    """"web01 (CT 101), db01 (CT 102) and 8 more": the first few of many containers."""
    listed = [f"{entry.name} (CT {entry.vmid})" for entry in views_or_items[:shown]]
    rest = len(views_or_items) - shown
    if rest > 0:
        return ", ".join(listed) + f" and {rest} more"
    return " and ".join([", ".join(listed[:-1]), listed[-1]]) if len(listed) > 1 else "".join(listed)


def get(bulk_id: int) -> BulkOperation | None:
    """The bulk action ``bulk_id``, or None."""
    return db.session.get(BulkOperation, bulk_id)


def on_dashboard(username: str | None) -> list[BulkOperation]:
    """The bulk actions a dashboard shows: every running one, and ``username``'s finished within ``RECENT``."""
    recent = utcnow() - RECENT
    return list(db.session.scalars(select(BulkOperation).where(or_(
        BulkOperation.state == "running",
        (BulkOperation.requested_by == username) & (BulkOperation.finished_at > recent),
    )).order_by(BulkOperation.id.desc()).limit(5)))


def advance_all() -> int:
    """Advance every running bulk action one step (the jobs sweep: they go on while nobody watches); returns
    how many ended."""
    ended = 0
    for bulk in db.session.scalars(select(BulkOperation).where(BulkOperation.state == "running")).all():
        try:
            ended += advance(bulk) is not None
        except ProxmoxError as exc:
            db.session.rollback()
            log.warning("bulk action %s: Proxmox cannot be asked now: %s", bulk.id, exc.message)
    return ended
