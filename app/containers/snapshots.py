"""The Snapshots tab of a container's page: the snapshot tree, and taking, rolling back and deleting snapshots.

A render costs two Proxmox calls beside the page's own (GET …/lxc/{vmid}/snapshot and …/feature?feature=snapshot)
and, while a snapshot operation is pending, one task status call. Each action is a Proxmox task started through
``services.start_task`` and followed to its end like a lifecycle action: the tab shows it in progress while the
header's spinner polls ``containers.operation_status``, which settles it (an event, an audit entry) and shows the
outcome's toast; the toast refreshes the page's live part, tab included (a poller of the tab's own would only
double the task status calls). A page without JavaScript settles it when it renders the tab. A
Proxmox that fails shows its error in the tab, never an empty tree. Names are checked as Proxmox checks them
(format ``pve-configid``, at most 40 characters, ``current`` and ``vzdump`` reserved, not already used)
before Proxmox is asked.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flask import abort, flash, g, make_response, redirect, render_template, url_for
from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Regexp, ValidationError

from app.containers import bp
from app.containers.detail import TAB_CONTEXTS, _load, render_detail
from app.containers.inventory import ContainerView
from app.containers.services import ActionRefused, settle_within, start_task, still_pending, task_busy_reason
from app.extensions import db
from app.forms import strip
from app.htmx import is_htmx, toast, trigger, varies
from app.models import Operation
from app.proxmox import ProxmoxError, Snapshot, get_proxmox

SNAPSHOT_ACTIONS = ("snapshot", "rollback", "snapshot-delete")
# pve-common PVE::JSONSchema $CONFIGID_RE (format pve-configid) and the API's maxLength of snapname.
SNAPNAME_RE = re.compile(r"^[a-z][a-z0-9_-]+$", re.IGNORECASE)
SNAPNAME_MAX = 40
# pve-container API2/LXC/Snapshot.pm refuses these before the task starts ("current" names the present state).
RESERVED_NAMES = ("current", "vzdump")
DESCRIPTION_MAX = 8192  # the container config's description limit (pve-container): Proxmox keeps it beside it
NO_SCRIPT_WAIT_SECONDS = 5  # how long a plain form POST waits to tell the task's result after the redirect
MODAL_CONTENT = "#confirm-modal .modal-content"


# -- the tree -------------------------------------------------------------------------------------------------

@dataclass
class SnapshotNode:
    """One snapshot (or the ``current`` state) with the snapshots taken on top of it, oldest first.

    ``on_branch``: it is the current state or one of its ancestors (the branch the container runs on).
    """

    snapshot: Snapshot
    children: list[SnapshotNode] = field(default_factory=list)
    on_branch: bool = False

    @property
    def taken_at(self) -> datetime | None:
        """When the snapshot was taken (UTC), None for the current state or an unknown time."""
        snaptime = self.snapshot.snaptime
        return datetime.fromtimestamp(snaptime, UTC) if snaptime and not self.snapshot.current else None


def snapshot_tree(snapshots: tuple[Snapshot, ...] | list[Snapshot]) -> list[SnapshotNode]:
    """The snapshots as a forest: each under its ``parent`` (a parent Proxmox no longer lists makes a root),
    siblings oldest first with the current state after its sibling snapshots, and the current branch marked."""
    nodes = {snap.name: SnapshotNode(snap) for snap in snapshots}
    roots: list[SnapshotNode] = []
    for node in nodes.values():
        parent = nodes.get(node.snapshot.parent) if node.snapshot.parent != node.snapshot.name else None
        (parent.children if parent is not None else roots).append(node)
    order = lambda n: (n.snapshot.current, n.snapshot.snaptime or 0, n.snapshot.name)  # noqa: E731
    for node in nodes.values():
        node.children.sort(key=order)
    roots.sort(key=order)
    current = next((n for n in nodes.values() if n.snapshot.current), None)
    seen: set[str] = set()
    while current is not None and current.snapshot.name not in seen:  # a parent cycle cannot loop forever
        seen.add(current.snapshot.name)
        current.on_branch = True
        current = nodes.get(current.snapshot.parent) if current.snapshot.parent else None
    return roots


# -- the tab --------------------------------------------------------------------------------------------------

@dataclass
class SnapshotsTab:
    """What the Snapshots tab shows: the tree (empty when ``error``), whether snapshots can be taken
    (``cannot``: why not), why the buttons are disabled now (``busy``), and the snapshot operation pending or
    last ended."""

    tree: list[SnapshotNode] = field(default_factory=list)
    names: frozenset[str] = frozenset()
    error: str | None = None
    cannot: str | None = None
    busy: str | None = None
    pending: Operation | None = None
    last: Operation | None = None

    @property
    def count(self) -> int:
        """How many snapshots there are (the current state not counted)."""
        return len(self.names)


FEATURE_MISSING = ("Proxmox cannot snapshot this container: one of its volumes does not support snapshots "
                   "(a bind mount, or a storage such as a directory that has no snapshots). Back it up instead.")


def busy_reason(view: ContainerView) -> str | None:
    """Why no snapshot action can start now (``task_busy_reason``, or a template), or None."""
    if reason := task_busy_reason(view):
        return reason
    return "A Proxmox template has no snapshots; clone it to make a container." if view.template else None


def _latest(view: ContainerView) -> Operation | None:
    if view.record_id is None:
        return None
    return db.session.scalar(db.select(Operation).where(
        Operation.container_id == view.record_id, Operation.action.in_(SNAPSHOT_ACTIONS))
        .order_by(Operation.started_at.desc(), Operation.id.desc()).limit(1))


def snapshots_tab(view: ContainerView) -> SnapshotsTab:
    """The tab's state for ``view``; for a page without JavaScript (no spinner polls) a pending snapshot
    operation whose task ended is settled first."""
    tab = SnapshotsTab(last=_latest(view))
    tab.pending = still_pending(view, tab.last, settle=not is_htmx())
    tab.busy = busy_reason(view)
    if view.lifecycle in ("gone", "creating") or view.lifecycle == "error" and view.pve_status == "unknown":
        tab.error = tab.busy or "Proxmox does not have this container."
        return tab
    if view.stale:
        tab.error = f"The snapshots cannot be read: {tab.busy}"
        return tab
    pve = get_proxmox()
    try:
        snapshots = pve.snapshots(view.node, view.vmid)
        possible = pve.can_snapshot(view.node, view.vmid)
    except ProxmoxError as exc:
        tab.error = f"Proxmox did not list the snapshots: {exc.message}"
        return tab
    tab.tree = snapshot_tree(snapshots)
    tab.names = frozenset(s.name for s in snapshots if not s.current)
    tab.cannot = None if possible else FEATURE_MISSING
    return tab


def snapshots_context(view: ContainerView) -> dict:
    """What the Snapshots tab shows (``snap``: a ``SnapshotsTab``)."""
    return {"snap": snapshots_tab(view)}


TAB_CONTEXTS["snapshots"] = snapshots_context


# -- forms ----------------------------------------------------------------------------------------------------

def _not_reserved(form, field_) -> None:
    if field_.data in RESERVED_NAMES:
        raise ValidationError(f"“{field_.data}” is reserved by Proxmox; choose another name.")


class SnapshotForm(FlaskForm):
    """Take a snapshot: its name (checked as Proxmox's ``snapname`` is) and an optional description."""

    name = StringField("Name", filters=[strip], validators=[
        DataRequired("Give the snapshot a name."),
        Length(max=SNAPNAME_MAX, message=f"At most {SNAPNAME_MAX} characters (Proxmox's limit)."),
        Regexp(SNAPNAME_RE, message="Start with a letter, then at least one more letter, digit, “-” or “_” "
                                    "(no spaces or dots), as Proxmox requires."),
        _not_reserved,
    ])
    description = TextAreaField("Description", filters=[strip], validators=[
        Length(max=DESCRIPTION_MAX, message=f"At most {DESCRIPTION_MAX} characters.")])


class RollbackForm(FlaskForm):
    """Roll back to a snapshot, and whether to start the container afterwards."""

    start = BooleanField("Start the container afterwards")


class DeleteSnapshotForm(FlaskForm):
    """Delete a snapshot (the CSRF token only)."""


# -- business rules -------------------------------------------------------------------------------------------

class NameTaken(ActionRefused):
    """The container already has a snapshot of that name (Proxmox would fail the task: "already used")."""

def _name_of(view: ContainerView) -> str:
    return f"{view.name} (CT {view.vmid})"


def take_snapshot(view: ContainerView, name: str, description: str, username: str) -> Operation:
    """Start a snapshot ``name`` of the container (POST nodes/{node}/lxc/{vmid}/snapshot); returns the pending
    operation. Raises NameTaken when the name is already used, ActionRefused when the container is busy, or Proxmox refuses
    (nothing changed), ProxmoxError when the snapshots cannot be listed to check the name."""
    if any(s.name == name for s in get_proxmox().snapshots(view.node, view.vmid) if not s.current):
        raise NameTaken(f"A snapshot named “{name}” already exists.")
    what = f"Snapshot “{name}” of {_name_of(view)}"
    return start_task(view.vmid, "snapshot", username,
                      lambda live: get_proxmox().create_snapshot(live.node, live.vmid, name, description or None),
                      what=what, done=f"{what} taken.", params={"snapname": name})


def roll_back(view: ContainerView, name: str, start: bool, username: str) -> Operation:
    """Start the rollback of the container to snapshot ``name`` (POST …/snapshot/{snapname}/rollback); Proxmox
    stops a running container first and, with ``start``, starts it when done. Raises ActionRefused (nothing
    changed) or ProxmoxError as ``take_snapshot``."""
    what = f"Rollback of {_name_of(view)} to “{name}”"
    done = f"{_name_of(view)} rolled back to “{name}”" + (" and started." if start else ".")
    return start_task(view.vmid, "rollback", username,
                      lambda live: get_proxmox().rollback_snapshot(live.node, live.vmid, name, start=start),
                      what=what, done=done, params={"snapname": name, "start": start})


def delete_snapshot(view: ContainerView, name: str, username: str) -> Operation:
    """Start the deletion of snapshot ``name`` (DELETE …/snapshot/{snapname}). Raises ActionRefused (nothing
    changed) or ProxmoxError as ``take_snapshot``."""
    what = f"Deletion of snapshot “{name}” of {_name_of(view)}"
    return start_task(view.vmid, "snapshot-delete", username,
                      lambda live: get_proxmox().delete_snapshot(live.node, live.vmid, name),
                      what=what, done=f"Snapshot “{name}” of {_name_of(view)} deleted.", params={"snapname": name})


# -- views ----------------------------------------------------------------------------------------------------

def _dialog(view: ContainerView, kind: str, form: FlaskForm, snapname: str | None = None, reason: str | None = None):
    """The create / rollback / delete dialog: a modal body for htmx, a page otherwise."""
    template = "containers/_snapshot_dialog.html" if is_htmx() else "containers/snapshot_dialog.html"
    title = {"create": f"Take a snapshot of {view.name}", "rollback": f"Roll back {view.name} to “{snapname}”?",
             "delete": f"Delete snapshot “{snapname}”?"}[kind]
    action_url = (url_for("containers.snapshot_create", vmid=view.vmid) if kind == "create"
                  else url_for(f"containers.snapshot_{kind}", vmid=view.vmid, snapname=snapname))
    return varies(make_response(render_template(template, ct=view, kind=kind, form=form, snapname=snapname,
                                                reason=reason, vmid=view.vmid, title=title, action_url=action_url)))


def _existing(view: ContainerView, snapname: str) -> str | None:
    """Why ``snapname`` cannot be acted on (it does not exist, Proxmox did not answer), or None."""
    try:
        names = {s.name for s in get_proxmox().snapshots(view.node, view.vmid) if not s.current}
    except ProxmoxError as exc:
        return f"Proxmox did not list the snapshots: {exc.message}"
    return None if snapname in names else f"There is no snapshot “{snapname}” any more."


def _snapshot_in_url(snapname: str) -> str:
    """``snapname`` from a URL, or the 404 page when no snapshot could ever have that name (Proxmox's format)."""
    if len(snapname) > SNAPNAME_MAX or not SNAPNAME_RE.match(snapname):
        abort(404, description="There is no such snapshot.")
    return snapname


def _reason(view: ContainerView, snapname: str | None = None) -> str | None:
    reason = busy_reason(view)
    if reason is None and snapname is not None:
        reason = _existing(view, snapname)
    return reason


def _started(view: ContainerView, operation: Operation | None, refused: str | None):
    """The answer to an action's POST: for htmx the page's live part (the header's spinner polls the task) with the
    dialog closed, a toast when refused; without JavaScript a redirect to the tab with a flash."""
    if not is_htmx():
        if refused:
            flash(refused, "error")
        elif outcome := settle_within(operation, NO_SCRIPT_WAIT_SECONDS):
            flash(outcome.message, outcome.category)
        else:
            flash(f"{operation.params['what']} requested; it is still in progress: reload to see the result.", "info")
        return redirect(url_for("containers.detail_tab", vmid=view.vmid, tab="snapshots"))
    response = render_detail(_load(view.vmid), "snapshots")
    events = {"close-modal": True}
    if refused:
        events["toast"] = toast(refused, "danger")
    return trigger(response, events)


@bp.get("/<int:vmid>/snapshots/new")
def snapshot_new(vmid: int):
    """The form to take a snapshot (a dialog for htmx, a page without JavaScript)."""
    view = _load(vmid)
    return _dialog(view, "create", SnapshotForm(), reason=busy_reason(view))


@bp.post("/<int:vmid>/snapshots")
def snapshot_create(vmid: int):
    """Take a snapshot; a refused name comes back beside its field and nothing is asked of Proxmox."""
    view = _load(vmid)
    form = SnapshotForm()
    if not form.validate():
        return _invalid(view, form)
    try:
        operation = take_snapshot(view, form.name.data, form.description.data or "", g.user.username)
    except NameTaken as exc:
        form.name.errors = [*form.name.errors, exc.message]
        return _invalid(view, form)
    except ActionRefused as exc:
        return _started(view, None, exc.message)
    except ProxmoxError as exc:
        return _started(view, None, f"Proxmox could not be asked: {exc.message}")
    return _started(view, operation, None)


def _invalid(view: ContainerView, form: SnapshotForm):
    """The form again with its errors: in the open dialog for htmx (which swaps only 2xx answers)."""
    response = _dialog(view, "create", form, reason=busy_reason(view))
    if is_htmx():
        response.headers["HX-Retarget"] = MODAL_CONTENT
        response.headers["HX-Reswap"] = "innerHTML"
    return response


@bp.get("/<int:vmid>/snapshots/<snapname>/rollback")
def snapshot_confirm_rollback(vmid: int, snapname: str):
    """Confirm a rollback: what is lost, and whether to start the container afterwards (on if it runs now)."""
    snapname = _snapshot_in_url(snapname)
    view = _load(vmid)
    return _dialog(view, "rollback", RollbackForm(start=view.pve_status == "running"), snapname,
                   _reason(view, snapname))


@bp.post("/<int:vmid>/snapshots/<snapname>/rollback")
def snapshot_rollback(vmid: int, snapname: str):
    """Roll the container back to ``snapname``."""
    snapname = _snapshot_in_url(snapname)
    view = _load(vmid)
    form = RollbackForm()
    if not form.validate():
        return _started(view, None, "The form expired; please try again.")
    if missing := _existing(view, snapname):
        return _started(view, None, missing)
    return _act(view, lambda: roll_back(view, snapname, bool(form.start.data), g.user.username))


@bp.get("/<int:vmid>/snapshots/<snapname>/delete")
def snapshot_confirm_delete(vmid: int, snapname: str):
    """Confirm the deletion of a snapshot."""
    snapname = _snapshot_in_url(snapname)
    view = _load(vmid)
    return _dialog(view, "delete", DeleteSnapshotForm(), snapname, _reason(view, snapname))


@bp.post("/<int:vmid>/snapshots/<snapname>/delete")
def snapshot_delete(vmid: int, snapname: str):
    """Delete snapshot ``snapname``."""
    snapname = _snapshot_in_url(snapname)
    view = _load(vmid)
    if not DeleteSnapshotForm().validate():
        return _started(view, None, "The form expired; please try again.")
    if missing := _existing(view, snapname):
        return _started(view, None, missing)
    return _act(view, lambda: delete_snapshot(view, snapname, g.user.username))


def _act(view: ContainerView, start):
    try:
        return _started(view, start(), None)
    except ActionRefused as exc:
        return _started(view, None, exc.message)
    except ProxmoxError as exc:
        return _started(view, None, f"Proxmox could not be asked: {exc.message}")
