"""Wizard state on the server (WizardDraft): steps, defaults, the root password, and submitting.

The session only carries the draft id; the root password lives encrypted in
``secret_encrypted`` and is wiped as soon as the container exists.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update

from app.container_templates.services import get_template, packages_by_manager, parse_package_text, split_tags
from app.containers.inventory import release_vmid, vmid_available
from app.extensions import db
from app.models import DEFAULT_CLUSTER, Container, ContainerTemplate, WizardDraft, current_cluster_name, utcnow
from app.proxmox import Bridge, Node, OsTemplate, ProxmoxError, Storage
from app.proxmox.deadline import gather
from app.proxmox.deadline import submit as start_call
from app.ssh.settings import SSHProblem

STEPS = ("template", "configure", "packages", "scripts", "review")
STEP_LABELS = {"template": "Template", "configure": "Configure", "packages": "Packages", "scripts": "Scripts",
               "review": "Review"}
SESSION_KEY = "wizard_draft"


def session_key() -> str:
    """The session key of the current cluster's draft: one wizard per cluster may be under way."""
    cluster = current_cluster_name()
    return SESSION_KEY if cluster == DEFAULT_CLUSTER else f"{SESSION_KEY}:{cluster}"


class DraftConsumed(Exception):
    """The draft was already submitted (double click, second tab); ``container_id`` is the result."""

    def __init__(self, container_id: int | None) -> None:
        super().__init__("This wizard was already submitted.")
        self.container_id = container_id


class SubmitRefused(Exception):
    """The draft cannot be submitted; ``step`` is where to fix it."""

    def __init__(self, message: str, step: str = "configure") -> None:
        super().__init__(message)
        self.message, self.step = message, step


# -- loading and steps ------------------------------------------------------------------


def load_draft(draft_id: str | None, user_id: int) -> WizardDraft | None:
    """The user's unconsumed draft ``draft_id`` for the current cluster, or None (a draft begun for another
    cluster chose that cluster's nodes and storages: it does not carry over)."""
    if not draft_id:
        return None
    draft = db.session.get(WizardDraft, draft_id)
    if draft is None or draft.user_id != user_id or draft.consumed_at is not None \
            or (draft.data or {}).get("cluster", DEFAULT_CLUSTER) != current_cluster_name():
        return None
    return draft


def new_draft(user_id: int) -> WizardDraft:
    """A fresh draft for the current cluster, starting at the template step."""
    draft = WizardDraft(id=str(uuid.uuid4()), user_id=user_id, data={"done": [], "cluster": current_cluster_name()})
    db.session.add(draft)
    db.session.commit()
    return draft


def completed(draft: WizardDraft) -> set[str]:
    """The steps whose data was saved valid."""
    return set((draft.data or {}).get("done", []))


def first_incomplete(draft: WizardDraft) -> str:
    """The earliest step not completed yet (``review`` once all are)."""
    done = completed(draft)
    return next(step for step in STEPS if step not in done)


def may_open(draft: WizardDraft, step: str) -> bool:
    """A step can be opened once every step before it is complete."""
    return STEPS.index(step) <= STEPS.index(first_incomplete(draft))


def step_data(draft: WizardDraft, step: str) -> dict[str, Any]:
    """What was saved for ``step`` (empty when nothing yet)."""
    return dict((draft.data or {}).get(step) or {})


def _save(draft: WizardDraft, step: str, values: dict[str, Any] | None, done: bool) -> None:
    data = dict(draft.data or {})
    if values is not None:
        data[step] = values
    finished = [name for name in data.get("done", []) if name != step]
    if done:
        finished.append(step)
    data["done"] = [name for name in STEPS if name in finished]
    draft.data = data  # a new dict, so SQLAlchemy sees the JSON change


def template_of(draft: WizardDraft) -> ContainerTemplate | None:
    """The chosen template with its scripts, files and packages loaded (None: from scratch)."""
    return get_template(draft.template_id) if draft.template_id else None


def choose_template(draft: WizardDraft, choice: str) -> None:
    """Save step 1; a different choice resets every later step to the new template's defaults."""
    template_id = None if choice == "scratch" else int(choice)
    previous = step_data(draft, "template")
    if previous and previous.get("choice") == choice:
        _save(draft, "template", previous, done=True)
        db.session.commit()
        return
    draft.template_id = template_id
    draft.secret_encrypted = None
    draft.data = {"done": [], "template": {"choice": choice}, "cluster": (draft.data or {}).get("cluster", DEFAULT_CLUSTER)}
    _save(draft, "template", None, done=True)
    db.session.commit()


def save_step(draft: WizardDraft, step: str, values: dict[str, Any], done: bool) -> None:
    """Save a step's values; ``done`` only when they passed validation."""
    _save(draft, step, values, done)
    db.session.commit()


def set_password(draft: WizardDraft, password: str) -> None:
    """Keep the root password, encrypted, until the container is created."""
    from app.credentials import encrypt

    draft.secret_encrypted = encrypt(password)


def has_password(draft: WizardDraft) -> bool:
    """True when a root password is stored for this draft."""
    return draft.secret_encrypted is not None


# -- defaults from the template and from Proxmox ------------------------------------------


@dataclass
class NodeOptions:
    """What the Configure step offers for one node, read from Proxmox."""

    nodes: list[Node] = field(default_factory=list)
    node: str | None = None
    ostemplates: list[OsTemplate] = field(default_factory=list)
    storages: list[Storage] = field(default_factory=list)
    bridges: list[Bridge] = field(default_factory=list)
    error: str | None = None


def node_options(pve, node: str | None) -> NodeOptions:
    """Online nodes and ``node``'s OS templates, container storages and bridges.

    An unknown or offline ``node`` falls back to the online node with the most free memory.
    The reads run in parallel under the request's deadline; a named node's lists are asked for
    beside the node list itself.
    """
    options = NodeOptions()

    def lists(name: str):
        return (lambda: pve.os_templates(name), lambda: pve.storages(name, content="rootdir"),
                lambda: pve.bridges(name))

    early = [start_call(read) for read in lists(node)] if node else []
    try:
        options.nodes = [item for item in pve.nodes() if item.is_online]
        names = [item.name for item in options.nodes]
        if node not in names:
            node, early = (max(options.nodes, key=lambda item: item.free_mem).name if options.nodes else None), []
        options.node = node
        if node:
            ostemplates, storages, bridges = [read.result() for read in early] if early else gather(*lists(node))
            options.ostemplates = list(ostemplates)
            options.storages = [s for s in storages if s.holds("rootdir") and s.enabled]
            options.bridges = list(bridges)
    except ProxmoxError as exc:
        options.error = exc.message
    return options


SCRATCH_OSTEMPLATE = "debian-12-standard"  # matched by name (``pick``): whichever Debian 12 build the node has


def configure_defaults(template: ContainerTemplate | None) -> dict[str, Any]:
    """The Configure step's starting values (the template's, else Proxmox's defaults and Debian 12)."""
    if template is None:
        return {"ostemplate": SCRATCH_OSTEMPLATE, "cores": 1, "memory": 512, "swap": 512, "disk": 8, "unprivileged": True, "nesting": False,
                "keyctl": False, "fuse": False, "tags": "", "ip_mode": "dhcp", "onboot": False}
    return {
        "ostemplate": template.ostemplate, "cores": template.cores, "memory": template.memory,
        "swap": template.swap, "disk": template.disk, "storage": template.storage, "bridge": template.bridge,
        "unprivileged": template.unprivileged, "nesting": template.nesting, "keyctl": template.keyctl,
        "fuse": template.fuse, "tags": " ".join(template.tag_list), "ip_mode": "dhcp", "onboot": False,
    }


def pick(preferred: str | None, values: list[str], match_name: bool = False) -> str | None:
    """``preferred`` if offered (or, with ``match_name``, a volid ending in it), else the first value."""
    if preferred in values:
        return preferred
    if preferred and match_name:
        stem = preferred.rsplit("/", 1)[-1]
        for value in values:
            if value.rsplit("/", 1)[-1].startswith(stem.split(".tar")[0]):
                return value
    return values[0] if values else None


def package_groups(template: ContainerTemplate | None) -> dict[str, list[str]]:
    """The template's packages by manager, each as ``name`` or ``name==version``."""
    if template is None:
        return {}
    return {
        manager: [package.name + (f"=={package.version}" if package.version else "") for package, _bucket in items]
        for manager, items in packages_by_manager(template).items()
    }


def script_rows(draft: WizardDraft, template: ContainerTemplate | None) -> list[tuple[Any, bool]]:
    """The template's scripts in the chosen order, each with whether it will run."""
    if template is None:
        return []
    scripts = {str(script.id): script for script in template.scripts}
    saved = step_data(draft, "scripts")
    order = [sid for sid in saved.get("order", []) if sid in scripts]
    order += [sid for sid in scripts if sid not in order]
    enabled = set(saved["enabled"]) if "enabled" in saved else {sid for sid, s in scripts.items() if s.enabled}
    return [(scripts[sid], sid in enabled) for sid in order]


def move(order: list[str], script_id: str, direction: str) -> list[str]:
    """``order`` with ``script_id`` swapped with its neighbour up or down."""
    order = list(order)
    if script_id not in order:
        return order
    index = order.index(script_id)
    other = index - 1 if direction == "up" else index + 1
    if 0 <= other < len(order):
        order[index], order[other] = order[other], order[index]
    return order


# -- submitting ---------------------------------------------------------------------------


def build_plan(draft: WizardDraft, template: ContainerTemplate | None) -> dict[str, Any]:
    """Everything the provisioning job needs, without the password (which stays on the draft)."""
    conf = step_data(draft, "configure")
    static = conf.get("ip_mode") == "static"
    spec = {
        "node": conf["node"], "vmid": int(conf["vmid"]), "ostemplate": conf["ostemplate"],
        "hostname": conf["hostname"], "cores": conf["cores"], "memory": conf["memory"], "swap": conf["swap"],
        "storage": conf["storage"], "disk_gb": conf["disk"], "bridge": conf["bridge"],
        "ip": conf["ip_cidr"].strip() if static else "dhcp",
        "gateway": (conf.get("gateway") or "").strip() or None if static else None,
        "nameserver": (conf.get("nameserver") or "").strip() or None,
        "unprivileged": bool(conf.get("unprivileged")), "nesting": bool(conf.get("nesting")),
        "keyctl": bool(conf.get("keyctl")), "fuse": bool(conf.get("fuse")), "onboot": bool(conf.get("onboot")),
        "ssh_public_keys": (conf.get("ssh_public_keys") or "").strip() or None,
        "tags": split_tags(conf.get("tags")),
    }
    packages: dict[str, list[str]] = {}
    chosen = step_data(draft, "packages")
    for manager, names in package_groups(template).items():
        if manager in chosen.get("groups", []):
            packages.setdefault(manager, []).extend(names)
    extra, _errors = parse_package_text(chosen.get("additional") or "")
    for line in extra:
        packages.setdefault(line.manager, []).append(line.name + (f"=={line.version}" if line.version else ""))
    scripts = [script.id for script, run in script_rows(draft, template) if run]
    return {
        "spec": spec,
        "packages": packages,
        "scripts": scripts,
        "files": [item.id for item in template.files] if template else [],
        "template_id": template.id if template else None,
        "draft_id": draft.id,
    }


@dataclass(frozen=True)
class SSHNeed:
    """Whether a plan needs SSH, and whether SSH is ready for its node (as the review step shows it)."""

    node: str
    work: dict[str, int]  # what runs inside the container, e.g. {"packages": 2, "scripts": 1}
    problem: SSHProblem | None  # why SSH to ``node`` cannot work yet (None: configured)

    @property
    def blocking(self) -> bool:
        """True when the plan needs SSH that is not ready: the draft cannot be submitted."""
        return bool(self.work) and self.problem is not None

    @property
    def what(self) -> str:
        """``"2 packages and 1 script"``."""
        from app.provisioning import describe_work

        return describe_work(self.work)

    def refusal(self) -> str:
        """The sentence explaining why Create is refused."""
        return (f"This container needs SSH to node {self.node} for {self.what}, but {self.problem.reason}. "
                f"{self.problem.fix}.")


def ssh_need(plan: dict[str, Any]) -> SSHNeed:
    """What ``plan`` needs over SSH and what is missing for it, read from the settings (no connection)."""
    from app.provisioning import inside_work, plan_ssh_problem

    return SSHNeed(plan["spec"]["node"], inside_work(plan), plan_ssh_problem(plan))


def submit(draft_id: str, username: str, pve) -> Container:
    """Consume the draft exactly once and record the container (lifecycle ``creating``).

    The atomic UPDATE ... WHERE consumed_at IS NULL makes a double click, Back-then-Create or a
    second tab end here with DraftConsumed instead of creating a second container. Raises
    SubmitRefused when a step is incomplete, the VMID was taken, or files, packages or scripts
    need SSH that is not configured for the node (``step`` is then ``review``).
    """
    draft = db.session.get(WizardDraft, draft_id)
    if draft is None:
        raise DraftConsumed(None)
    if draft.consumed_at is not None:
        raise DraftConsumed(draft.container_id)
    missing = [step for step in STEPS[:-1] if step not in completed(draft)]
    if missing:
        raise SubmitRefused(f"The {STEP_LABELS[missing[0]]} step is not complete.", missing[0])
    template = template_of(draft)
    plan = build_plan(draft, template)
    vmid = plan["spec"]["vmid"]
    try:
        free = vmid_available(vmid)
    except ProxmoxError as exc:
        raise SubmitRefused(f"Proxmox cannot check VMID {vmid}: {exc.message}") from exc
    if not free:
        raise SubmitRefused(f"VMID {vmid} was taken in the meantime; choose another.")
    need = ssh_need(plan)
    if need.blocking:
        raise SubmitRefused(need.refusal(), "review")

    claimed = db.session.execute(
        update(WizardDraft)
        .where(WizardDraft.id == draft_id, WizardDraft.consumed_at.is_(None))
        .values(consumed_at=utcnow())
    )
    if claimed.rowcount != 1:
        db.session.rollback()
        raise DraftConsumed(db.session.scalar(select(WizardDraft.container_id).where(WizardDraft.id == draft_id)))

    release_vmid(vmid)  # a record of a guest Proxmox no longer has is archived, never reused
    container = Container(vmid=vmid)
    db.session.add(container)
    container.node = plan["spec"]["node"]
    container.hostname = plan["spec"]["hostname"]
    container.lifecycle = "creating"
    container.managed = True
    container.created_by = username
    container.template_id = plan["template_id"]
    container.ip = plan["spec"]["ip"].split("/")[0] if plan["spec"]["ip"] != "dhcp" else None
    db.session.flush()
    db.session.execute(update(WizardDraft).where(WizardDraft.id == draft_id).values(container_id=container.id))

    from app.provisioning import start_provisioning

    start_provisioning(container, plan, username)
    return container


def expire_abandoned(max_age: timedelta) -> int:
    """Delete unconsumed drafts untouched for ``max_age`` (their stored password with them)."""
    cutoff = utcnow() - max_age
    result = db.session.execute(
        delete(WizardDraft).where(WizardDraft.consumed_at.is_(None), WizardDraft.updated_at < cutoff)
    )
    db.session.commit()
    return result.rowcount or 0
