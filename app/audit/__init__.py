"""The audit log: who did what, when, from which address, on what, and how it ended.

``record`` is the one way to write it. Requests that change something are recorded in one place, the
``after_request`` hook of ``hook`` (``init_app``), named and targeted by ``naming``; features call ``record``
themselves only to say more than the hook can (sign-ins, 2FA, role changes), and the hook then stays silent
for that request. How Proxmox ended a lifecycle task is a second entry (channel ``worker``, by the user who
asked), written where the operation settles (``containers.services``). ``/audit`` lists the log with filters
and ``/audit.csv`` exports it (``routes``, admins only); ``services.sweep_retention`` forgets entries older than
``AUDIT_RETENTION_DAYS``.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, g, has_request_context, request

from app.audit.naming import container_target, describe
from app.extensions import db
from app.models import AUDIT_OUTCOMES, AuditEntry, User, current_cluster_name

MESSAGE_CHARS = 1000  # of a result kept in an entry's detail

bp = Blueprint("audit", __name__, template_folder="templates")

__all__ = ["bp", "container_target", "init_app", "record", "record_request"]


def _cut(text: str | None, length: int) -> str | None:
    return text.replace("\x00", "")[:length] or None if text else None


def record(action: str, *, outcome: str = "succeeded", target: str | None = None, container=None,
           vmid: int | None = None, detail: dict[str, Any] | None = None, user=None, username: str | None = None,
           channel: str | None = None) -> AuditEntry:
    """Add one audit entry to the session (the caller commits, with its own change or alone).

    ``action``: a dotted name such as ``"auth.sign_in"`` or ``"container.stop"``; ``outcome``: one of
    ``AUDIT_OUTCOMES``; ``container``: a ``Container`` (its id and VMID are kept); ``user`` defaults to the
    signed-in ``g.user`` and ``username`` to that user's name (give it for a sign-in under an unknown name);
    ``channel`` defaults to ``token`` when the request came with an API token (``g.api_token``), ``web``
    in a request, ``worker`` outside one; a ``worker`` entry never takes the request's user, address or token.
    ``detail`` must never hold a secret.

    Given the request's own endpoint as ``action`` (``audit.record(request.endpoint, outcome="refused")``),
    the entry is named and targeted as the request hook names it (``container.stop`` on ``CT 101 (web01)``).
    Raises ValueError for an unknown outcome.
    """
    if outcome not in AUDIT_OUTCOMES:
        raise ValueError(f"unknown audit outcome {outcome!r}")
    # A worker entry written while a request runs (a page settling an operation) is not that request's.
    in_request = has_request_context() and channel != "worker"
    if in_request and request.endpoint and action == request.endpoint:
        described = describe(action, request.view_args)
        named = g.get("audit_container")  # a view that made its container (``about``)
        action, container = described.action, container or described.container or named
        vmid = vmid if vmid is not None else (described.vmid or (named.vmid if named is not None else None))
        if target is None or target == request.path:
            target = (g.get("audit_target_before") or described.target
                      or (container_target(named) if named is not None else None) or target)
        detail = {**described.detail, **(detail or {})}
    token = g.get("api_token") if in_request else None
    if user is None and in_request:
        user = g.get("user")
    if channel is None:
        channel = "token" if token is not None else ("web" if in_request else "worker")
    entry = AuditEntry(
        user_id=user.id if user is not None else None,
        username=_cut(username if username is not None else (user.username if user is not None else None), 80),
        ip=_cut(request.remote_addr, 45) if in_request else None,
        channel=channel, token_id=token.id if token is not None else None,
        action=action[:64], target=_cut(target, 255), outcome=outcome, detail=detail or None,
        container_id=container.id if container is not None else None,
        vmid=vmid if vmid is not None else (container.vmid if container is not None else None),
    )
    if entry.vmid is not None:
        entry.cluster = _cluster_name(container)
    db.session.add(entry)
    if in_request:  # the request hook skips a request that recorded itself (see hook.recorded_itself)
        g.setdefault("_audit_entries", []).append(entry)
    return entry


def _cluster_name(container) -> str:
    """The cluster of the entry's guest: its record's, else the one the request or job works on."""
    if container is not None and container.cluster is not None:
        return container.cluster.name  # the session's one Cluster row: loaded once, not per entry
    return current_cluster_name()


def record_request(*, outcome: str = "succeeded", detail: dict[str, Any] | None = None, user=None) -> AuditEntry:
    """Record the current request as the request hook would (its action name and target from the endpoint
    and URL arguments, see ``naming.describe``), with ``outcome`` and extra ``detail``, by ``user`` (default
    the signed-in ``g.user``); the caller commits."""
    return record(request.endpoint, outcome=outcome, detail=detail, user=user)


def record_result(operation, container, outcome: str, message: str) -> AuditEntry:
    """The entry of how an operation's work ended (a Proxmox task, a provisioning run), under the user who
    asked (``operation.requested_by``), channel ``worker``: the request that asked was recorded when it was
    accepted; this says what came of it. Added to the session; the caller commits with the operation."""
    requester = db.session.scalar(db.select(User).filter_by(username=operation.requested_by)) \
        if operation.requested_by else None
    return record(f"container.{operation.action}", outcome=outcome, container=container, user=requester,
                  username=operation.requested_by, channel="worker", target=container_target(container),
                  detail={"result": message[:MESSAGE_CHARS], "upid": operation.upid})


def about(container) -> None:
    """Tell the audit hook which container this request acted on when its URL does not name one (the
    wizard's last step creates it)."""
    g.audit_container = container


def nothing_done() -> None:
    """Tell the audit hook that this state-changing request changed nothing (it only asked to confirm)."""
    g.audit_nothing_done = True


def init_app(app: Flask) -> None:
    """Audit every request that changes something (see ``hook``)."""
    hook.init_app(app)


from app.audit import hook, routes  # noqa: E402,F401  (the hook needs record; routes register on bp)
