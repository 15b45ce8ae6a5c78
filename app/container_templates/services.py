"""Changes to templates and package buckets: every view and CLI command goes through here."""
from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func, literal, or_, select, update
from sqlalchemy.orm import selectinload

from app.container_templates import package_names
from app.extensions import db
from app.input_guard import container_path
from app.models import (
    PACKAGE_MANAGERS,
    Container,
    ContainerTemplate,
    PackageBucket,
    TemplateFile,
    TemplatePackage,
    TemplateScript,
    TemplateService,
    WizardDraft,
)

TAG_RE = re.compile(r"^[a-z0-9_][a-z0-9_\-+.]*$")
TAGS_HELP = "Separated by spaces or commas; lower-case letters, digits, _ - + . (Proxmox's rules)."
CREDENTIAL_RE = re.compile(r"^\s*save_credential\s+(\S+)\s+(\S+)", re.MULTILINE)
# How many of each a template (or a bucket) holds at most: far above any real recipe (the catalog's largest
# has 12 packages and 6 scripts), low enough that a template page, an export and a provisioning plan stay small.
MAX_ITEMS = {"packages": 500, "scripts": 100, "files": 100, "services": 50, "buckets": 50, "tags": 50}
CONFIG_FIELDS = (
    "name", "description", "ostemplate", "cores", "memory", "swap", "disk", "storage", "bridge",
    "unprivileged", "nesting", "keyctl", "fuse", "tags",
)


class TemplateError(ValueError):
    """A change that breaks a rule; ``field`` names the form field at fault when there is one."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


# -- tags ---------------------------------------------------------------------------


def split_tags(text: str | None) -> list[str]:
    """Tags typed by a user (comma, space or ``;`` separated), lower-cased, deduplicated, sorted."""
    return sorted({tag.lower() for tag in re.split(r"[\s,;]+", text or "") if tag})


def invalid_tags(tags: list[str]) -> list[str]:
    """The tags Proxmox would refuse."""
    return [tag for tag in tags if not TAG_RE.match(tag)]


def join_tags(tags: list[str]) -> str:
    """Tags stored the Proxmox way: ``a;b;c``."""
    return ";".join(split_tags(";".join(tags)))


# -- reading ------------------------------------------------------------------------


def list_templates(search: str = "", tags: list[str] | None = None) -> list[ContainerTemplate]:
    """Templates whose name or description contains ``search`` and that carry every tag in ``tags``."""
    query = select(ContainerTemplate).options(
        selectinload(ContainerTemplate.scripts).load_only(TemplateScript.id, TemplateScript.template_id),
        selectinload(ContainerTemplate.files).load_only(TemplateFile.id, TemplateFile.template_id),
        selectinload(ContainerTemplate.packages).load_only(TemplatePackage.id, TemplatePackage.template_id),
        selectinload(ContainerTemplate.buckets).selectinload(PackageBucket.packages).load_only(
            TemplatePackage.id, TemplatePackage.bucket_id
        ),
    )
    if search.strip():
        pattern = f"%{search.strip().lower()}%"
        query = query.where(
            or_(func.lower(ContainerTemplate.name).like(pattern), func.lower(ContainerTemplate.description).like(pattern))
        )
    for tag in tags or ():
        query = query.where((literal(";") + ContainerTemplate.tags + literal(";")).contains(f";{tag};"))
    return list(db.session.scalars(query.order_by(func.lower(ContainerTemplate.name))))


def all_tags() -> list[str]:
    """Every tag used by some template, sorted."""
    found: set[str] = set()
    for tags in db.session.scalars(select(ContainerTemplate.tags)):
        found.update(tag for tag in tags.split(";") if tag)
    return sorted(found)


def template_count() -> int:
    """How many templates exist."""
    return db.session.scalar(select(func.count(ContainerTemplate.id))) or 0


def get_template(template_id: int) -> ContainerTemplate | None:
    """A template with everything it contains loaded."""
    return db.session.scalar(
        select(ContainerTemplate)
        .where(ContainerTemplate.id == template_id)
        .options(
            selectinload(ContainerTemplate.scripts),
            selectinload(ContainerTemplate.files),
            selectinload(ContainerTemplate.packages),
            selectinload(ContainerTemplate.services),
            selectinload(ContainerTemplate.buckets).selectinload(PackageBucket.packages),
        )
    )


def find_template(name: str) -> ContainerTemplate | None:
    """The template called ``name``."""
    return db.session.scalar(select(ContainerTemplate).where(ContainerTemplate.name == name))


def packages_by_manager(template: ContainerTemplate) -> dict[str, list[tuple[TemplatePackage, str | None]]]:
    """Every package a template installs, direct or from a bucket, grouped by manager (apt, pip, npm)."""
    groups: dict[str, list[tuple[TemplatePackage, str | None]]] = {manager: [] for manager in PACKAGE_MANAGERS}
    for package in template.packages:
        groups[package.manager].append((package, None))
    for bucket in template.buckets:
        for package in bucket.packages:
            groups[package.manager].append((package, bucket.name))
    return {manager: items for manager, items in groups.items() if items}


def package_total(template: ContainerTemplate) -> int:
    """Direct packages plus those of attached buckets."""
    return len(template.packages) + sum(len(bucket.packages) for bucket in template.buckets)


def declared_credentials(template: ContainerTemplate) -> list[tuple[str, str]]:
    """``(service, key)`` pairs the enabled scripts save with ``save_credential``."""
    found: list[tuple[str, str]] = []
    for script in template.scripts:
        if script.enabled:
            for pair in CREDENTIAL_RE.findall(script.content):
                if pair not in found:
                    found.append(pair)
    return found


def containers_using(template: ContainerTemplate) -> int:
    """How many containers were created from ``template``."""
    return db.session.scalar(select(func.count(Container.id)).where(Container.template_id == template.id)) or 0


def templates_with_bucket(bucket: PackageBucket) -> list[str]:
    """Names of the templates that install ``bucket``."""
    return list(db.session.scalars(
        select(ContainerTemplate.name).where(ContainerTemplate.buckets.contains(bucket)).order_by(ContainerTemplate.name)
    ))


NO_OPTIONS = {"ostemplates": [], "storages": [], "bridges": [], "error": None}


def cluster_options(pve) -> dict:
    """OS templates (vztmpl volids), container storages and bridges found on the online nodes.

    When Proxmox cannot be asked, the lists are empty and ``error`` says why: the form then
    takes free text.
    """
    from app.proxmox import ProxmoxError
    from app.proxmox.deadline import gather

    ostemplates: set[str] = set()
    storages: set[str] = set()
    bridges: set[str] = set()
    try:
        online = [node.name for node in pve.nodes() if node.status == "online"]
        # Independent reads in parallel, under the request's deadline. Storage and bridge are free
        # text with suggestions: one node's names are enough.
        per_node = [lambda name=name: pve.os_templates(name) for name in online]
        first_node = [lambda: pve.storages(online[0], content="rootdir"), lambda: pve.bridges(online[0])]
        found = gather(*per_node, *(first_node if online else ()))
        for templates in found[:len(online)]:
            ostemplates.update(t.volid for t in templates)
        if online:
            storages.update(s.storage for s in found[-2])
            bridges.update(b.iface for b in found[-1])
    except ProxmoxError as error:
        return {**NO_OPTIONS, "error": error.message}
    return {"ostemplates": sorted(ostemplates), "storages": sorted(storages), "bridges": sorted(bridges),
            "error": None}


# -- templates ----------------------------------------------------------------------


def _check_name_free(name: str, template_id: int | None = None) -> None:
    query = select(ContainerTemplate.id).where(func.lower(ContainerTemplate.name) == name.lower())
    if template_id is not None:
        query = query.where(ContainerTemplate.id != template_id)
    if db.session.scalar(query) is not None:
        raise TemplateError(f"A template called “{name}” already exists.", field="name")


def _apply_config(template: ContainerTemplate, data: dict) -> None:
    for key in CONFIG_FIELDS:
        if key in data:
            setattr(template, key, data[key])
    if isinstance(data.get("tags"), list):
        template.tags = join_tags(data["tags"])


def create_template(data: dict) -> ContainerTemplate:
    """Create a template from config values (``tags`` as a list); raises TemplateError on a taken name."""
    _check_name_free(data["name"])
    template = ContainerTemplate(description="", tags="")
    _apply_config(template, data)
    db.session.add(template)
    db.session.commit()
    return template


def update_template(template: ContainerTemplate, data: dict) -> ContainerTemplate:
    """Change a template's config values."""
    _check_name_free(data.get("name", template.name), template.id)
    _apply_config(template, data)
    db.session.commit()
    return template


def _copy_name(name: str) -> str:
    taken = {n.lower() for n in db.session.scalars(select(ContainerTemplate.name))}
    candidate, number = f"{name} (copy)", 2
    while candidate.lower() in taken:
        candidate, number = f"{name} (copy {number})", number + 1
    return candidate[:100]


def duplicate_template(template: ContainerTemplate) -> ContainerTemplate:
    """A copy of ``template`` with every script, file, package, service and bucket, named “… (copy)”."""
    copy = ContainerTemplate(name=_copy_name(template.name))
    for key in CONFIG_FIELDS[1:]:
        setattr(copy, key, getattr(template, key))
    copy.scripts = [TemplateScript(name=s.name, position=s.position, content=s.content, enabled=s.enabled)
                    for s in template.scripts]
    copy.files = [TemplateFile(name=f.name, target_path=f.target_path, policy=f.policy, content=f.content)
                  for f in template.files]
    copy.packages = [TemplatePackage(manager=p.manager, name=p.name, version=p.version) for p in template.packages]
    copy.services = [TemplateService(name=s.name, unit=s.unit, port=s.port, scheme=s.scheme, web_path=s.web_path)
                     for s in template.services]
    copy.buckets = list(template.buckets)
    db.session.add(copy)
    db.session.commit()
    return copy


def delete_template(template: ContainerTemplate) -> None:
    """Delete a template; containers made from it keep running (their template link becomes empty)."""
    # The foreign keys say SET NULL, but SQLite only obeys them with PRAGMA foreign_keys on.
    for model in (Container, WizardDraft):
        db.session.execute(update(model).where(model.template_id == template.id).values(template_id=None))
    db.session.delete(template)
    db.session.commit()


# -- scripts ------------------------------------------------------------------------


def _check_room(owner: ContainerTemplate | PackageBucket, kind: str, field: str = "name") -> None:
    """Raise TemplateError when ``owner`` already holds MAX_ITEMS[kind] of ``kind``."""
    if len(getattr(owner, kind)) >= MAX_ITEMS[kind]:
        raise TemplateError(f"This {'bucket' if isinstance(owner, PackageBucket) else 'template'} already has "
                            f"{MAX_ITEMS[kind]} {kind}, the most it can hold.", field=field)


def add_script(template: ContainerTemplate, name: str, content: str, enabled: bool = True) -> TemplateScript:
    """Append a script to the end of the run order; TemplateError when the template has MAX_ITEMS of them."""
    _check_room(template, "scripts")
    position = max((s.position for s in template.scripts), default=-1) + 1
    script = TemplateScript(name=name, content=_unix_newlines(content), enabled=enabled, position=position)
    template.scripts.append(script)
    db.session.commit()
    return script


def update_script(script: TemplateScript, name: str, content: str, enabled: bool) -> None:
    """Change a script's name, content and whether it runs."""
    script.name, script.content, script.enabled = name, _unix_newlines(content), enabled
    db.session.commit()


def toggle_script(script: TemplateScript) -> None:
    """Enable a disabled script or disable an enabled one."""
    script.enabled = not script.enabled
    db.session.commit()


def move_script(script: TemplateScript, offset: int) -> None:
    """Move a script up (-1) or down (+1) in the run order."""
    scripts = sorted(script.template.scripts, key=lambda s: (s.position, s.id))
    index = scripts.index(script)
    target = index + offset
    if 0 <= target < len(scripts):
        scripts[index], scripts[target] = scripts[target], scripts[index]
    for position, item in enumerate(scripts):
        item.position = position
    db.session.commit()


def delete_script(script: TemplateScript) -> None:
    """Remove a script and close the gap in the run order."""
    template = script.template
    template.scripts.remove(script)
    for position, item in enumerate(sorted(template.scripts, key=lambda s: (s.position, s.id))):
        item.position = position
    db.session.commit()


def _unix_newlines(text: str) -> str:
    # Browsers send textareas with CRLF; bash chokes on the CRs.
    return (text or "").replace("\r\n", "\n")


# -- files, packages, services -----------------------------------------------------------


def save_file(template: ContainerTemplate, data: dict, file: TemplateFile | None = None) -> TemplateFile:
    """Add a file to a template, or change ``file``; TemplateError for a taken name or one file too many."""
    if file is None:
        _check_room(template, "files")
    try:
        target_path = container_path(data["target_path"])
    except ValueError as error:
        raise TemplateError(f"{str(error)[:1].upper()}{str(error)[1:]}.", field="target_path") from None
    if any(f.name == data["name"] and f is not file for f in template.files):
        raise TemplateError(f"This template already has a file called “{data['name']}”.", field="name")
    if file is None:
        file = TemplateFile()
        template.files.append(file)
    file.name, file.target_path, file.policy = data["name"], target_path, data["policy"]
    file.content = _unix_newlines(data.get("content", ""))
    db.session.commit()
    return file


def add_package(owner: ContainerTemplate | PackageBucket, manager: str, name: str, version: str | None) -> TemplatePackage:
    """Add a package to a template or a bucket; the same manager and name twice, or one too many, is refused."""
    _check_room(owner, "packages")
    if any(p.manager == manager and p.name == name for p in owner.packages):
        raise TemplateError(f"{manager} package “{name}” is already in the list.", field="name")
    package = TemplatePackage(manager=manager, name=name, version=version or None)
    owner.packages.append(package)
    db.session.commit()
    return package


def save_service(template: ContainerTemplate, data: dict, service: TemplateService | None = None) -> TemplateService:
    """Add a provided service to a template, or change ``service``; TemplateError for one service too many."""
    if service is None:
        _check_room(template, "services")
        service = TemplateService()
        template.services.append(service)
    for key in ("name", "unit", "port", "scheme", "web_path"):
        setattr(service, key, data.get(key) or None)
    service.scheme = data.get("scheme") or "http"
    db.session.commit()
    return service


def delete_child(item: TemplateFile | TemplatePackage | TemplateService) -> None:
    """Remove a file, package or service."""
    db.session.delete(item)
    db.session.commit()


def child_of(template: ContainerTemplate, model, item_id: int):
    """Row ``item_id`` of ``model`` if it belongs to ``template``, else None."""
    item = db.session.get(model, item_id)
    return item if item is not None and item.template_id == template.id else None


def attach_bucket(template: ContainerTemplate, bucket: PackageBucket) -> None:
    """Install a bucket's packages with this template."""
    if bucket not in template.buckets:
        template.buckets.append(bucket)
    db.session.commit()


def detach_bucket(template: ContainerTemplate, bucket: PackageBucket) -> None:
    """Stop installing a bucket's packages with this template."""
    if bucket in template.buckets:
        template.buckets.remove(bucket)
    db.session.commit()


# -- package buckets ----------------------------------------------------------------


def list_buckets() -> list[PackageBucket]:
    """Every bucket with its packages, by name."""
    return list(db.session.scalars(
        select(PackageBucket).options(selectinload(PackageBucket.packages)).order_by(func.lower(PackageBucket.name))
    ))


def _check_bucket_name_free(name: str, bucket_id: int | None = None) -> None:
    query = select(PackageBucket.id).where(func.lower(PackageBucket.name) == name.lower())
    if bucket_id is not None:
        query = query.where(PackageBucket.id != bucket_id)
    if db.session.scalar(query) is not None:
        raise TemplateError(f"A bucket called “{name}” already exists.", field="name")


def create_bucket(name: str, description: str = "") -> PackageBucket:
    """A new, empty package bucket."""
    _check_bucket_name_free(name)
    bucket = PackageBucket(name=name, description=description or "")
    db.session.add(bucket)
    db.session.commit()
    return bucket


def rename_bucket(bucket: PackageBucket, name: str, description: str | None = None) -> None:
    """Give a bucket a new name (and description)."""
    _check_bucket_name_free(name, bucket.id)
    bucket.name = name
    if description is not None:
        bucket.description = description
    db.session.commit()


def delete_bucket(bucket: PackageBucket) -> None:
    """Delete a bucket and its packages; templates that used it stop installing them."""
    db.session.delete(bucket)
    db.session.commit()


@dataclass(frozen=True)
class PackageLine:
    manager: str
    name: str
    version: str | None


def parse_package_line(line: str, default_manager: str = "apt") -> PackageLine:
    """``name``, ``name==version``, ``manager:name`` or ``manager:name==version``, each name checked by
    its manager's grammar (``package_names``); raises ValueError."""
    manager, text = default_manager, line.strip()
    prefix, colon, rest = text.partition(":")
    if colon and (prefix.strip() in PACKAGE_MANAGERS or not package_names.APT_NAME_RE.match(text.split("==")[0])):
        manager, text = prefix.strip(), rest.strip()
        if manager not in PACKAGE_MANAGERS:
            raise ValueError(f"unknown package manager “{manager}” (use {', '.join(PACKAGE_MANAGERS)})")
    name, separator, version = (part.strip() for part in text.partition("=="))
    if separator and not version:
        raise ValueError("missing version after “==”")
    package_names.check_package(manager, name, version or None)
    return PackageLine(manager, name, version or None)


def parse_package_text(text: str, default_manager: str = "apt") -> tuple[list[PackageLine], list[str]]:
    """Packages from pasted text (one per line, ``#`` comments) and the errors, as ``line N: …``.

    Past MAX_ITEMS["packages"] packages the rest is one error (and at most 10 bad lines are named).
    """
    packages: list[PackageLine] = []
    errors: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if len(packages) + len(errors) >= MAX_ITEMS["packages"]:
            errors.append(f"line {number}: more than {MAX_ITEMS['packages']} packages")
            break
        if len(errors) >= 10:
            errors.append(f"line {number} and after: not read (fix the lines above first)")
            break
        try:
            packages.append(parse_package_line(line, default_manager))
        except ValueError as error:
            errors.append(f"line {number}: {error}")
    return packages, errors


def import_bucket_packages(bucket: PackageBucket, text: str, default_manager: str = "apt") -> int:
    """Add every package in ``text`` to ``bucket``; on any bad line nothing is added (TemplateError)."""
    packages, errors = parse_package_text(text, default_manager)
    if errors:
        raise TemplateError("; ".join(errors), field="text")
    existing = {(p.manager, p.name): p for p in bucket.packages}
    if len(existing.keys() | {(p.manager, p.name) for p in packages}) > MAX_ITEMS["packages"]:
        raise TemplateError(f"A bucket holds at most {MAX_ITEMS['packages']} packages; nothing was added.",
                            field="text")
    added = 0
    for line in packages:
        if (line.manager, line.name) in existing:
            existing[(line.manager, line.name)].version = line.version
            continue
        package = TemplatePackage(manager=line.manager, name=line.name, version=line.version)
        bucket.packages.append(package)
        existing[(line.manager, line.name)] = package
        added += 1
    db.session.commit()
    return added
