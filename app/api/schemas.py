"""What ``/api/v1`` answers and accepts, as pydantic models: the views build every JSON body through them, and
their JSON Schema (2020-12, the dialect of OpenAPI 3.1) is what ``openapi.json`` documents, so an answer cannot
drift from its description.

Request bodies are described here but validated by the wizard's and the importer's own rules (``app.wizard.steps``,
``container_templates.manifest``): a model here never refuses what a page would accept.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.containers.inventory import STATUS_FILTERS


class Model(BaseModel):
    """Every API model: unknown attributes are an error in the code, never sent."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)


# -- errors and pages -------------------------------------------------------------------------


class Problem(Model):
    """An error (RFC 9457 ``application/problem+json``)."""

    model_config = ConfigDict(extra="allow")
    type: str = Field("about:blank", description="A URI naming the kind of problem; about:blank: the status says it.")
    title: str = Field(description="The status's phrase, e.g. Not Found.")
    status: int = Field(ge=400, le=599)
    detail: str = Field(description="What went wrong and what to do, for a person.")
    errors: dict[str, list[str]] | None = Field(
        None, description="For a body that did not validate: each field's messages (the wizard's own).")


class PageInfo(Model):
    """Where a page sits in its list."""

    number: int = Field(ge=1, description="This page (a number past the last gives the last page).")
    per_page: int = Field(ge=1)
    pages: int = Field(ge=1)
    total: int = Field(ge=0, description="Items in the whole list, across pages.")


# -- operations -------------------------------------------------------------------------------


class Operation(Model):
    """Something Proxboard asked Proxmox to do and follows until it ends (a lifecycle action, a creation…)."""

    id: int
    vmid: int
    action: str = Field(description="start, shutdown, stop, reboot, delete, provision, snapshot…")
    state: Literal["queued", "running", "succeeded", "failed"]
    step: str | None = Field(None, description="For a creation: the step it is at.")
    progress: int = Field(0, description="Percent, for a creation.")
    requested_by: str | None = None
    started_at: datetime
    finished_at: datetime | None = None
    error: str | None = Field(None, description="Why it failed.")
    url: str = Field(description="Where to poll it.")


# -- containers -------------------------------------------------------------------------------


class ServiceHealth(Model):
    """A service inside a container and its health as last checked over SSH (``unknown`` while the container
    is not running)."""

    id: int
    name: str
    kind: str = Field(description="application or system.")
    unit: str | None = None
    status: str = Field(description="running, failed, stopped, unknown…")
    port: int | None = None
    protocol: str | None = None
    web_url: str | None = None
    checked_at: datetime | None = None
    last_error: str | None = None


class ServiceBrief(Model):
    """An application service as a dashboard card shows it."""

    name: str
    status: str


class Container(Model):
    """A container as the dashboard shows it: Proxmox's figures merged with Proxboard's record.

    ``stale`` marks last-known figures (Proxmox or the container's node could not be asked; ``stale_reason``
    says why, none when Proxmox itself was unreachable).
    """

    cluster: str = Field("default", description="The cluster the guest lives in (a VMID is unique per cluster); "
                                                 "its other clusters' addresses are /api/v1/clusters/<cluster>/….")
    vmid: int
    node: str
    name: str
    status: str = Field(description="What a person sees: running, stopped, paused, creating, error, gone, locked, "
                                    "template or unknown.")
    pve_status: str = Field(description="Proxmox's own status.")
    cpu_percent: float
    cpus: float
    mem: int = Field(description="Bytes in use.")
    maxmem: int
    disk: int
    maxdisk: int
    swap: int | None = None
    maxswap: int | None = None
    uptime: int = Field(description="Seconds.")
    tags: list[str]
    lock: str | None = None
    ha_managed: bool
    ha_state: str | None = None
    template: bool
    managed: bool = Field(description="Created by Proxboard.")
    lifecycle: str | None = None
    stale: bool
    stale_reason: str | None = None
    snapshot_at: datetime | None = Field(None, description="When the last-known figures were taken.")
    gone_at: datetime | None = None
    pending: Operation | None = Field(None, description="The operation running on it now.")
    services: list[ServiceBrief]
    url: str


class ProxmoxState(Model):
    """Whether Proxmox answered this request (when not, the figures are the last known ones)."""

    reachable: bool
    slow: bool = False
    error: str | None = None
    unreachable_since: datetime | None = None
    offline_nodes: dict[str, datetime] = Field(default_factory=dict, description="Node to offline since.")


class ContainerList(Model):
    """One page of containers, with the counts per status filter of the whole search."""

    items: list[Container]
    page: PageInfo
    counts: dict[str, int] = Field(description="all, running, stopped, other and failing.")
    search_note: str | None = Field(None, description="Why a backup: term could not be applied, or what to "
                                                      "keep in mind about it.")
    proxmox: ProxmoxState


class Address(Model):
    """One network interface: how each family is configured and the address it has now (CIDR)."""

    name: str
    bridge: str | None = None
    mode: str = Field(description="IPv4: static, dhcp or manual.")
    address: str | None = None
    gateway: str | None = None
    mode6: str = Field(description="IPv6: static, dhcp, auto (SLAAC) or manual.")
    address6: str | None = None
    gateway6: str | None = None
    hwaddr: str | None = None


class ContainerDetail(Container):
    """A container with its record and live configuration."""

    hostname: str | None = None
    created_by: str | None = None
    created_at: datetime | None = None
    template_id: int | None = None
    ip: str | None = Field(None, description="The address to reach it at.")
    addresses: list[Address]
    config_error: str | None = Field(None, description="Why the configuration could not be read.")
    actions: dict[str, str | None] = Field(description="Each lifecycle action: null when possible now, else why not.")
    failure: str | None = Field(None, description="Why its creation failed.")


class ContainerStatus(Model):
    """The live status of one container (one Proxmox call)."""

    vmid: int
    node: str
    status: str
    pve_status: str
    cpu_percent: float
    cpus: float
    mem: int
    maxmem: int
    disk: int
    maxdisk: int
    swap: int | None = None
    maxswap: int | None = None
    uptime: int
    lock: str | None = None
    ha_state: str | None = None
    stale: bool
    stale_reason: str | None = None
    pending: Operation | None = None


class ServiceList(Model):
    """The services found inside a container (application ones first) and the last check."""

    items: list[ServiceHealth]
    refresh: Operation | None = Field(None, description="The latest services check.")


class Event(Model):
    """One entry of a container's timeline."""

    id: int
    type: str
    message: str
    created_at: datetime
    requested_by: str | None = None


class EventList(Model):
    """One page of a container's timeline, newest first."""

    items: list[Event]
    page: PageInfo
    counts: dict[str, int] = Field(description="Events per type (and all).")


class Accepted(Model):
    """A container being created: its provisioning operation is the one to poll."""

    vmid: int
    url: str
    operation: Operation


# -- templates --------------------------------------------------------------------------------


class Template(Model):
    """A container template (what the wizard starts from)."""

    id: int
    name: str
    description: str
    ostemplate: str | None = None
    cores: int
    memory: int
    swap: int
    disk: int
    storage: str | None = None
    bridge: str | None = None
    unprivileged: bool
    nesting: bool
    keyctl: bool
    fuse: bool
    tags: list[str]
    scripts: int = Field(description="How many scripts.")
    files: int
    packages: int = Field(description="Packages, its own and its package lists'.")
    export_url: str


class TemplateList(Model):
    """One page of templates, by name."""

    items: list[Template]
    page: PageInfo


class ImportResult(Model):
    """What an import did."""

    template: Template
    created: bool = Field(description="False: a template of that name was updated.")
    summary: str


Manifest = dict[str, Any]  # a template file (format proxboard-template/1): see the README's "Templates"


# -- queries and bodies -----------------------------------------------------------------------


class PageQuery(Model):
    """page and per_page of every list."""

    page: int = Field(1, ge=1, le=2**31 - 1, description="Anything but a number is page 1.")
    per_page: int = Field(24, ge=1, le=100)


class ContainerQuery(PageQuery):
    """The dashboard's filter and search."""

    status: Literal[STATUS_FILTERS] = Field(  # type: ignore[valid-type]
        "all", description="A status filter (anything else: all).")
    q: str = Field("", max_length=100, description="Words matched in VMID, name, node and tags; backup:none, "
                                                   "backup:>7d, backup:<1d filter by backup age.")


class EventQuery(PageQuery):
    """A timeline filter."""

    type: str = Field("all", description="all or one event type (anything else: all).")


class TemplateQuery(PageQuery):
    """The template search."""

    search: str = Field("", max_length=200, description="Text in the name or description.")
    tags: str = Field("", max_length=255, description="Only templates with all these tags (space-separated).")


class CreateContainer(BaseModel):
    """The wizard's fields (their names, rules and messages). Left out: what the wizard fills in itself."""

    model_config = ConfigDict(extra="allow")
    template: str = Field("scratch", description="scratch, or a template id.")
    hostname: str = Field(description="A DNS name, at most 63 characters per label.")
    node: str | None = Field(None, description="Default: the online node with the most free memory.")
    vmid: int | None = Field(None, description="Default: the lowest free VMID.")
    ostemplate: str | None = Field(None, description="A volid; default: the template's, else Debian 12.")
    password: str | None = Field(None, description="The root password (at least 5 characters); or ssh_public_keys.")
    password_confirm: str | None = Field(None, description="Default: password.")
    ssh_public_keys: str | None = None
    cores: int | None = None
    memory: int | None = Field(None, description="MiB.")
    swap: int | None = Field(None, description="MiB.")
    disk: int | None = Field(None, description="GiB.")
    storage: str | None = None
    bridge: str | None = None
    ip_mode: Literal["dhcp", "static"] | None = None
    ip_cidr: str | None = None
    gateway: str | None = None
    nameserver: str | None = None
    unprivileged: bool | None = None
    nesting: bool | None = None
    keyctl: bool | None = None
    fuse: bool | None = None
    onboot: bool | None = None
    tags: str | None = Field(None, description="Space-separated.")
    groups: list[str] | None = Field(None, description="The template's package managers to install; default all.")
    additional: str | None = Field(None, description="More packages, one per line (manager:name==version).")
    enabled: list[str] | None = Field(None, description="Ids of the template's scripts to run; default its "
                                                        "enabled ones.")
    order: list[str] | None = Field(None, description="Script ids in the order they run.")
