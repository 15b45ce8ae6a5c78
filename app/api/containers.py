"""``/api/v1/containers``: the dashboard's list, a container's page (detail, live status, services, events),
its lifecycle actions, and creating one through the wizard's steps.

Reads never fail for Proxmox alone: like the pages, they answer the last-known state (``stale``) when Proxmox or
a node cannot be asked, and 503 only when there is none. Actions need Proxmox: 503 when it cannot be reached.
"""
from __future__ import annotations

from flask import g, url_for
from werkzeug.exceptions import NotFound

from app import audit, problems
from app.api import bp, schemas
from app.api.common import (
    InvalidBody,
    answer,
    form_values,
    invalid,
    json_body,
    list_answer,
    operation_model,
    page_info,
)
from app.api.forms import ContainerListQuery, EventListQuery
from app.api.spec import documented
from app.containers import detail as pages
from app.containers.inventory import ContainerView
from app.containers.listing import list_containers
from app.containers.services import ACTIONS, ActionRefused, ContainerMissing, action_reasons, request_action
from app.provisioning import latest_operation
from app.proxmox import ProxmoxAPIError, ProxmoxError, get_proxmox
from app.wizard import services as wizard
from app.wizard.steps import StepInvalid, create_container

ACTION_NAMES = ", ".join(ACTIONS)


def container_fields(view: ContainerView) -> dict:
    """What every container answer holds, from the view the pages show."""
    return {
        "cluster": view.cluster, "vmid": view.vmid, "node": view.node, "name": view.name, "status": view.status, "pve_status": view.pve_status,
        "cpu_percent": view.cpu_percent, "cpus": view.cpus, "mem": view.mem, "maxmem": view.maxmem,
        "disk": view.disk, "maxdisk": view.maxdisk, "swap": view.swap, "maxswap": view.maxswap,
        "uptime": view.uptime, "tags": list(view.tags), "lock": view.lock, "ha_managed": view.ha_managed,
        "ha_state": view.ha_state, "template": view.template, "managed": view.managed, "lifecycle": view.lifecycle,
        "stale": view.stale, "stale_reason": view.stale_reason, "snapshot_at": view.snapshot_at,
        "gone_at": view.gone_at, "pending": operation_model(view.pending) if view.pending is not None else None,
        "services": [schemas.ServiceBrief(name=s.name, status=s.status) for s in view.services],
        "url": url_for("api.container", vmid=view.vmid, cluster=view.cluster),
    }


def _view(vmid: int) -> ContainerView:
    """The container's view as its page shows it; 404 problem when nobody knows it, 503 when Proxmox is down
    and Proxboard has never seen it (``ProxmoxError`` is answered by ``proxmox_unreachable``)."""
    view = pages.find_view(vmid)
    if view is None:
        raise NotFound(f"There is no container {vmid}.")
    return view


@bp.errorhandler(ProxmoxError)
def proxmox_unreachable(exc: ProxmoxError):
    """Proxmox could not answer what this request needs, and there is no last-known state to give instead; a guest
    Proxmox says does not exist (destroyed meanwhile) is a 404."""
    if isinstance(exc, ProxmoxAPIError) and exc.not_found:
        return problems.problem(404, f"Proxmox no longer has it ({exc.message}); nothing was changed.")
    return problems.problem(503, f"Proxmox cannot be reached ({exc.message}); nothing was changed.",
                            headers={"Retry-After": "10"})


@bp.get("/containers")
@documented("List containers with the dashboard's filters and search", tag="containers",
            query=schemas.ContainerQuery, responses={200: schemas.ContainerList}, list_etag=True)
def containers():
    """The dashboard's grid as JSON: ``status``, ``q`` and ``page`` as on the dashboard, and ``per_page``."""
    form = ContainerListQuery()
    if not form.validate():
        return problems.problem(400, "The query string is not valid.", errors=form.errors)  # only per_page can fail
    listing = list_containers(form.status_filter, form.search, form.page_number, form.page_size)
    inventory = listing.inventory
    search = listing.search
    body = schemas.ContainerList(
        items=[schemas.Container(**container_fields(view)) for view in listing.page.items],
        page=page_info(listing.page, form.page_size, listing.total), counts=listing.counts,
        search_note=search.error or search.problem or search.note,
        proxmox=schemas.ProxmoxState(reachable=inventory.reachable, slow=inventory.slow, error=inventory.error,
                                     unreachable_since=inventory.unreachable_since,
                                     offline_nodes=inventory.offline_nodes))
    return list_answer(body, body.page, "api.containers",
                       {"status": form.status_filter if form.status_filter != "all" else None, "q": form.search})


@bp.get("/containers/<int:vmid>")
@documented("A container: its figures, record, addresses and which actions are possible", tag="containers",
            responses={200: schemas.ContainerDetail})
def container(vmid: int):
    """What the container's page header and Overview tab show."""
    view = _view(vmid)
    header = pages.header_context(view)
    live, record = header["live"], header["record"]
    body = schemas.ContainerDetail(
        **container_fields(view),
        hostname=record.hostname if record is not None else None,
        created_by=record.created_by if record is not None else None,
        created_at=record.created_at if record is not None else None,
        template_id=record.template_id if record is not None else None,
        ip=header["ip"], config_error=live.error, failure=header["failure"],
        addresses=[schemas.Address(name=n.name, bridge=n.bridge, mode=n.mode, address=n.address, gateway=n.gateway,
                                   mode6=n.mode6, address6=n.address6, gateway6=n.gateway6, hwaddr=n.hwaddr)
                   for n in live.networks],
        actions=action_reasons(view, not view.stale))
    return answer(body)


@bp.get("/containers/<int:vmid>/status")
@documented("A container's live status (one Proxmox call)", tag="containers", responses={200: schemas.ContainerStatus})
def container_status(vmid: int):
    """The figures of the status call, and the operation running on the container now."""
    view = _view(vmid)
    fields = container_fields(view)
    return answer(schemas.ContainerStatus(**{name: fields[name] for name in schemas.ContainerStatus.model_fields}))


@bp.get("/containers/<int:vmid>/services")
@documented("The services inside a container, with their health", tag="containers",
            responses={200: schemas.ServiceList})
def container_services(vmid: int):
    """What the Services tab shows: application services first, then system ones, and the last check."""
    context = pages.services_context(_view(vmid))
    items = [schemas.ServiceHealth(id=s.id, name=s.name, kind=s.kind, unit=s.unit, status=s.status, port=s.port,
                                   protocol=s.protocol, web_url=s.web_url, checked_at=s.checked_at,
                                   last_error=s.last_error)
             for s in [*context["applications"], *context["system"]]]
    refresh = context["refresh"]
    return answer(schemas.ServiceList(items=items, refresh=operation_model(refresh) if refresh is not None else None))


@bp.get("/containers/<int:vmid>/events")
@documented("A container's timeline, newest first", tag="containers", query=schemas.EventQuery,
            responses={200: schemas.EventList}, list_etag=True)
def container_events(vmid: int):
    """What the Events tab shows: ``type`` filters as there, ``page`` and ``per_page`` page it."""
    form = EventListQuery()
    if not form.validate():
        return problems.problem(400, "The query string is not valid.", errors=form.errors)
    kind = form.type.data if form.type.data in pages.EVENT_FILTERS else "all"
    page = pages.events_page(_view(vmid), kind, form.page_number, form.page_size)
    body = schemas.EventList(
        items=[schemas.Event(id=e.id, type=e.type, message=e.message, created_at=e.created_at,
                             requested_by=page.requested_by.get(e.id)) for e in page.items],
        page=page_info(page, form.page_size, page.counts[kind]), counts=page.counts)
    return list_answer(body, body.page, "api.container_events", {"type": kind if kind != "all" else None},
                       vmid=vmid)


@bp.post(f"/containers/<int:vmid>/actions/<any({', '.join(ACTIONS)}):action>")
@documented(f"Run a lifecycle action ({ACTION_NAMES}); poll the operation it answers", tag="containers",
            responses={202: schemas.Operation},
            problems={409: "The container's state does not allow it now (the detail says why); nothing changed."})
def container_action(vmid: int, action: str):
    """Ask Proxmox for the action as the container's buttons do; 202 with the operation and its ``Location``."""
    try:
        operation = request_action(vmid, action, g.user.username)
    except ActionRefused as refused:
        return problems.problem(404 if isinstance(refused, ContainerMissing) else 409, refused.message)
    body = operation_model(operation)
    return answer(body, 202, {"Location": body.url})


@bp.post("/containers")
@documented("Create a container with the wizard's rules; poll its provisioning operation", tag="containers",
            body=schemas.CreateContainer, responses={202: schemas.Accepted},
            body_description="The wizard's fields; what is left out takes the value the wizard fills in.",
            problems={415: "The body is not JSON.",
                      422: "A field is not valid (errors: the wizard's messages per field); nothing was created."})
def create():
    """Walk the wizard's steps with the body and submit it (``wizard.steps.create_container``)."""
    try:
        values = form_values(json_body())
    except InvalidBody as exc:
        return invalid(exc.errors)
    try:
        created = create_container(g.user, values, get_proxmox())
    except StepInvalid as exc:
        return invalid(exc.errors)
    except wizard.SubmitRefused as refused:
        return invalid({refused.step: [refused.message]}, refused.message)
    audit.about(created)
    operation = operation_model(latest_operation(created))
    body = schemas.Accepted(vmid=created.vmid, url=url_for("api.container", vmid=created.vmid), operation=operation)
    return answer(body, 202, {"Location": operation.url})
