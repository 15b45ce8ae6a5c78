"""The audit log: who did what, when, from which address, on what, and how it ended.

``record`` is the one way to write it; every feature calls it (sign-ins, 2FA, roles, credential reveals…).
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, g, has_request_context, request

from app.extensions import db
from app.models import AUDIT_OUTCOMES, AuditEntry

bp = Blueprint("audit", __name__, template_folder="templates")


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
    in a request, ``worker`` outside one. ``detail`` must never hold a secret.
    """
    if outcome not in AUDIT_OUTCOMES:
        raise ValueError(f"unknown audit outcome {outcome!r}")
    in_request = has_request_context()
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
    db.session.add(entry)
    return entry
