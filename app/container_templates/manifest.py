"""Templates as files: a single JSON file, or a folder (``template.json`` + scripts/ + files/ + packages/).

Reading and writing are pure functions over ``TemplateSpec``; ``apply_specs`` is the one place that
writes to the database, in one transaction.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from app.container_templates import package_names, services
from app.extensions import db
from app.forms import PVE_RANGES, column_length
from app.input_guard import container_path
from app.models import (
    FILE_POLICIES,
    PACKAGE_MANAGERS,
    SERVICE_SCHEMES,
    ContainerTemplate,
    PackageBucket,
    TemplateFile,
    TemplatePackage,
    TemplateScript,
    TemplateService,
)

FORMAT = "proxboard-template/1"
MANIFEST = "template.json"
SCHEMES = SERVICE_SCHEMES
FILE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
RESOURCES = ("cores", "memory", "swap", "disk")  # their ranges: app.forms.PVE_RANGES


class ManifestError(ValueError):
    """A manifest that cannot be imported; the message names the file and the key or line at fault."""


@dataclass
class TemplateSpec:
    """Everything a template file says, validated, ready to write or to apply."""

    name: str
    description: str = ""
    ostemplate: str | None = None
    cores: int = 1
    memory: int = 512
    swap: int = 512
    disk: int = 8
    storage: str | None = None
    bridge: str | None = None
    unprivileged: bool = True
    nesting: bool = False
    keyctl: bool = False
    fuse: bool = False
    tags: list[str] = field(default_factory=list)
    services: list[dict] = field(default_factory=list)
    buckets: list[dict] = field(default_factory=list)
    packages: list[dict] = field(default_factory=list)
    files: list[dict] = field(default_factory=list)
    scripts: list[dict] = field(default_factory=list)
    source: str = ""


# -- export -----------------------------------------------------------------------------


def slugify(name: str) -> str:
    """A file-name-safe form of ``name``: ``Jellyfin Media`` -> ``jellyfin-media``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "template"


def _package(package: TemplatePackage) -> dict:
    return {"manager": package.manager, "name": package.name, "version": package.version}


def _sorted_packages(packages) -> list:
    return sorted(packages, key=lambda p: (PACKAGE_MANAGERS.index(p.manager), p.id or 0))


def spec_from_template(template: ContainerTemplate) -> TemplateSpec:
    """The spec of a stored template (no credentials: a template has none, and none are looked up)."""
    return TemplateSpec(
        name=template.name, description=template.description, ostemplate=template.ostemplate,
        cores=template.cores, memory=template.memory, swap=template.swap, disk=template.disk,
        storage=template.storage, bridge=template.bridge, unprivileged=template.unprivileged,
        nesting=template.nesting, keyctl=template.keyctl, fuse=template.fuse, tags=template.tag_list,
        services=[{"name": s.name, "unit": s.unit, "port": s.port, "scheme": s.scheme, "web_path": s.web_path}
                  for s in template.services],
        buckets=[{"name": b.name, "description": b.description,
                  "packages": [_package(p) for p in _sorted_packages(b.packages)]} for b in template.buckets],
        packages=[_package(p) for p in _sorted_packages(template.packages)],
        files=[{"name": f.name, "target_path": f.target_path, "policy": f.policy, "content": f.content}
               for f in template.files],
        scripts=[{"name": s.name, "enabled": s.enabled, "content": s.content}
                 for s in sorted(template.scripts, key=lambda s: (s.position, s.id))],
    )


def _config(spec: TemplateSpec) -> dict:
    return {
        "format": FORMAT,
        "name": spec.name,
        "description": spec.description,
        "ostemplate": spec.ostemplate,
        "resources": {"cores": spec.cores, "memory": spec.memory, "swap": spec.swap, "disk": spec.disk,
                      "storage": spec.storage, "bridge": spec.bridge},
        "features": {"unprivileged": spec.unprivileged, "nesting": spec.nesting, "keyctl": spec.keyctl,
                     "fuse": spec.fuse},
        "tags": spec.tags,
        "services": spec.services,
        "buckets": spec.buckets,
    }


def _dump(data: dict) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def export_json(spec: TemplateSpec) -> str:
    """The single-file form of a template."""
    return _dump({**_config(spec), "packages": spec.packages, "files": spec.files, "scripts": spec.scripts})


def script_filename(position: int, name: str) -> str:
    """``scripts/NN-name.sh`` for the script at ``position`` (0-based)."""
    return f"scripts/{position + 1:02d}-{slugify(name)}.sh"


def folder_contents(spec: TemplateSpec) -> dict[str, str]:
    """The folder form of a template: relative path -> text."""
    contents: dict[str, str] = {}
    scripts = []
    for position, script in enumerate(spec.scripts):
        path = script_filename(position, script["name"])
        contents[path] = script["content"]
        scripts.append({"name": script["name"], "enabled": script["enabled"], "file": path})
    files = []
    for item in spec.files:
        contents[f"files/{item['name']}"] = item["content"]
        files.append({"name": item["name"], "target_path": item["target_path"], "policy": item["policy"]})
    for manager in PACKAGE_MANAGERS:
        lines = [p["name"] + (f"=={p['version']}" if p["version"] else "") for p in spec.packages
                 if p["manager"] == manager]
        if lines:
            contents[f"packages/{manager}.txt"] = "".join(line + "\n" for line in lines)
    contents[MANIFEST] = _dump({**_config(spec), "files": files, "scripts": scripts})
    return dict(sorted(contents.items()))


def write_folder(spec: TemplateSpec, folder: Path) -> None:
    """Write the folder form of ``spec`` into ``folder`` (created; must be empty)."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise ManifestError(f"{folder}: folder is not empty")
    for relative, text in folder_contents(spec).items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(text.encode("utf-8"))


# -- import -----------------------------------------------------------------------------


def _read_text(path: Path, label: str) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{label}: file not found") from None
    except UnicodeDecodeError as error:
        raise ManifestError(f"{label}: not UTF-8 text (byte {error.start})") from None


MAX_JSON_DEPTH = 32  # a manifest nests 4 levels; deeper is an attack on the parser, not a template


def _nesting_error(text: str) -> tuple[int, int] | None:
    """(line, column) where ``text`` nests arrays/objects deeper than MAX_JSON_DEPTH, else None."""
    depth, in_string, escaped, line, column = 0, False, False, 1, 0
    for char in text:
        column += 1
        if char == "\n":
            line, column = line + 1, 0
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return line, column
        elif char in "]}":
            depth -= 1
    return None


def parse_json(text: str, source: str) -> dict:
    """The JSON object in ``text``; syntax errors name ``source`` and the line.

    Raises ManifestError, also for nesting deeper than MAX_JSON_DEPTH (checked before parsing:
    Python's parser would exhaust its recursion limit).
    """
    too_deep = _nesting_error(text)
    if too_deep:
        raise ManifestError(f"{source}, line {too_deep[0]} column {too_deep[1]}: nested deeper than "
                            f"{MAX_JSON_DEPTH} levels")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ManifestError(f"{source}, line {error.lineno} column {error.colno}: {error.msg}") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{source}, line 1: a template manifest is a JSON object")
    return data


class _Reader:
    """Checks values of one manifest, naming ``source`` and the key at fault."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, message: str):
        raise ManifestError(f"{self.source}: {key}: {message}")

    def get(self, data: dict, key: str, kind, path: str, default=None, required=False):
        if key not in data or data[key] is None:
            if required:
                self.fail(path, "is required")
            return default
        value = data[key]
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            self.fail(path, "must be a whole number")
        if kind is not int and not isinstance(value, kind):
            self.fail(path, f"must be {_KIND_NAMES.get(kind, kind.__name__)}")
        return value

    def text(self, data: dict, key: str, path: str, required=False, default=None, column=None,
             max_length: int | None = None) -> str | None:
        """The text at ``key``, at most as long as ``column`` (a mapped String(n) attribute) stores."""
        value = self.get(data, key, str, path, default, required)
        max_length = column_length(column) if column is not None else max_length
        if value is not None:
            if required and not value.strip():
                self.fail(path, "must not be empty")
            if max_length and len(value) > max_length:
                self.fail(path, f"is longer than {max_length} characters")
        return value

    def items(self, data: dict, key: str, where: str | None = None) -> list[dict]:
        where = where or key
        values = self.get(data, key, list, where, [])
        if len(values) > services.MAX_ITEMS[key]:
            self.fail(where, f"lists {len(values)} {key}; a template holds at most {services.MAX_ITEMS[key]}")
        for index, value in enumerate(values):
            if not isinstance(value, dict):
                self.fail(f"{where}[{index}]", "must be an object")
        return values


_KIND_NAMES = {str: "text", bool: "true or false", list: "a list", dict: "an object"}


def spec_from_manifest(data: dict, source: str, folder: Path | None = None) -> TemplateSpec:
    """Validate a manifest (single file, or ``template.json`` of ``folder``) into a TemplateSpec."""
    r = _Reader(source)
    if data.get("format") != FORMAT:
        r.fail("format", f"must be “{FORMAT}”")
    spec = TemplateSpec(name=r.text(data, "name", "name", required=True, column=ContainerTemplate.name).strip(),
                        source=source)
    spec.description = r.text(data, "description", "description", default="")
    spec.ostemplate = r.text(data, "ostemplate", "ostemplate", column=ContainerTemplate.ostemplate) or None
    resources = r.get(data, "resources", dict, "resources", {})
    for key in RESOURCES:
        low, high = PVE_RANGES[key]
        value = r.get(resources, key, int, f"resources.{key}", getattr(spec, key))
        if not low <= value <= high:
            r.fail(f"resources.{key}", f"must be at least {low} and at most {high}")
        setattr(spec, key, value)
    spec.storage = r.text(resources, "storage", "resources.storage", column=ContainerTemplate.storage) or None
    spec.bridge = r.text(resources, "bridge", "resources.bridge", column=ContainerTemplate.bridge) or None
    features = r.get(data, "features", dict, "features", {})
    for key in ("unprivileged", "nesting", "keyctl", "fuse"):
        setattr(spec, key, r.get(features, key, bool, f"features.{key}", getattr(spec, key)))
    tags = r.get(data, "tags", list, "tags", [])
    if not all(isinstance(tag, str) for tag in tags):
        r.fail("tags", "must be a list of text")
    if len(tags) > services.MAX_ITEMS["tags"]:
        r.fail("tags", f"lists {len(tags)} tags; a template holds at most {services.MAX_ITEMS['tags']}")
    spec.tags = services.split_tags(";".join(tags))
    if bad := services.invalid_tags(spec.tags):
        r.fail("tags", f"invalid tag “{bad[0]}” (letters, digits, _ - + . and no leading - + .)")
    if len(services.join_tags(spec.tags)) > column_length(ContainerTemplate.tags):
        r.fail("tags", f"are longer than {column_length(ContainerTemplate.tags)} characters together")
    for index, item in enumerate(r.items(data, "services")):
        path = f"services[{index}]"
        port = r.get(item, "port", int, f"{path}.port")
        if port is not None and not 1 <= port <= 65535:
            r.fail(f"{path}.port", "must be between 1 and 65535")
        scheme = r.text(item, "scheme", f"{path}.scheme", default="http")
        if scheme not in SCHEMES:
            r.fail(f"{path}.scheme", f"must be one of {', '.join(SCHEMES)}")
        spec.services.append({"name": r.text(item, "name", f"{path}.name", required=True, column=TemplateService.name),
                              "unit": r.text(item, "unit", f"{path}.unit", column=TemplateService.unit) or None,
                              "port": port, "scheme": scheme,
                              "web_path": r.text(item, "web_path", f"{path}.web_path",
                                                 column=TemplateService.web_path) or None})
    for index, item in enumerate(r.items(data, "buckets")):
        path = f"buckets[{index}]"
        spec.buckets.append({"name": r.text(item, "name", f"{path}.name", required=True, column=PackageBucket.name),
                             "description": r.text(item, "description", f"{path}.description", default=""),
                             "packages": _packages(r, item, "packages", f"{path}.packages")})
    if folder is None:
        spec.packages = _packages(r, data, "packages", "packages")
    else:
        spec.packages = _folder_packages(folder, source)
    names: set[str] = set()
    for index, item in enumerate(r.items(data, "files")):
        path = f"files[{index}]"
        name = r.text(item, "name", f"{path}.name", required=True, column=TemplateFile.name)
        if not FILE_NAME_RE.match(name):
            r.fail(f"{path}.name", "must be a plain file name (letters, digits, _ . -)")
        if name in names:
            r.fail(f"{path}.name", f"“{name}” is listed twice")
        names.add(name)
        target = r.text(item, "target_path", f"{path}.target_path", required=True, column=TemplateFile.target_path)
        try:
            target = container_path(target)
        except ValueError as error:
            r.fail(f"{path}.target_path", str(error))
        policy = r.text(item, "policy", f"{path}.policy", default="replace")
        if policy not in FILE_POLICIES:
            r.fail(f"{path}.policy", f"must be one of {', '.join(FILE_POLICIES)}")
        content = _content(r, item, f"{path}", folder, f"files/{name}")
        spec.files.append({"name": name, "target_path": target, "policy": policy, "content": content})
    for index, item in enumerate(r.items(data, "scripts")):
        path = f"scripts[{index}]"
        spec.scripts.append({"name": r.text(item, "name", f"{path}.name", required=True, column=TemplateScript.name),
                             "enabled": r.get(item, "enabled", bool, f"{path}.enabled", True),
                             "content": _content(r, item, path, folder, None)})
    return spec


def _content(r: _Reader, item: dict, path: str, folder: Path | None, default_file: str | None) -> str:
    if "content" in item or folder is None:
        return r.text(item, "content", f"{path}.content", default="")
    relative = r.text(item, "file", f"{path}.file", required=default_file is None, default=default_file,
                      max_length=255)
    target = (folder / relative).resolve()
    if not target.is_relative_to(folder.resolve()):
        r.fail(f"{path}.file", "must stay inside the template folder")
    return _read_text(target, f"{folder / relative}")


def _packages(r: _Reader, data: dict, key: str, where: str) -> list[dict]:
    packages = []
    for index, item in enumerate(r.items(data, key, where)):
        path = f"{where}[{index}]"
        manager = r.text(item, "manager", f"{path}.manager", required=True)
        if manager not in PACKAGE_MANAGERS:
            r.fail(f"{path}.manager", f"must be one of {', '.join(PACKAGE_MANAGERS)}")
        name = r.text(item, "name", f"{path}.name", required=True, column=TemplatePackage.name)
        version = r.text(item, "version", f"{path}.version", column=TemplatePackage.version) or None
        try:
            package_names.check_name(manager, name)
        except ValueError as error:
            r.fail(f"{path}.name", str(error))
        try:
            package_names.check_package(manager, name, version)
        except ValueError as error:
            r.fail(f"{path}.version", str(error))
        packages.append({"manager": manager, "name": name, "version": version})
    return packages


def _folder_packages(folder: Path, source: str) -> list[dict]:
    packages = []
    for manager in PACKAGE_MANAGERS:
        path = folder / "packages" / f"{manager}.txt"
        if not path.exists():
            continue
        lines, errors = services.parse_package_text(_read_text(path, str(path)), manager)
        if errors:
            raise ManifestError(f"{path}, {errors[0]}")
        for line in lines:
            if line.manager != manager:
                raise ManifestError(f"{path}: lists a {line.manager} package ({line.name}); put it in {line.manager}.txt")
            packages.append({"manager": manager, "name": line.name, "version": line.version})
    return packages


def read_file(path: Path) -> TemplateSpec:
    """A single-file template."""
    return spec_from_manifest(parse_json(_read_text(path, str(path)), str(path)), str(path))


def read_text(text: str, source: str) -> TemplateSpec:
    """A single-file template from uploaded text."""
    return spec_from_manifest(parse_json(text, source), source)


def read_folder(folder: Path) -> TemplateSpec:
    """A folder template (``folder/template.json`` and the files it points at)."""
    manifest = folder / MANIFEST
    return spec_from_manifest(parse_json(_read_text(manifest, str(manifest)), str(manifest)), str(manifest), folder)


def read_path(path: Path) -> list[TemplateSpec]:
    """The templates at ``path``: a file, a template folder, or a folder of files and template folders."""
    path = Path(path)
    if path.is_file():
        return [read_file(path)]
    if not path.is_dir():
        raise ManifestError(f"{path}: no such file or folder")
    if (path / MANIFEST).is_file():
        return [read_folder(path)]
    specs = []
    for child in sorted(path.iterdir()):
        if child.is_dir() and (child / MANIFEST).is_file():
            specs.append(read_folder(child))
        elif child.is_file() and child.suffix == ".json":
            specs.append(read_file(child))
    return specs


# -- apply ------------------------------------------------------------------------------


@dataclass
class ApplyResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """``2 created, 1 updated`` (only the non-zero parts)."""
        parts = [f"{len(names)} {label}" for label, names in
                 (("created", self.created), ("updated", self.updated), ("unchanged", self.skipped)) if names]
        return ", ".join(parts) or "nothing to import"


def apply_specs(specs: list[TemplateSpec], existing: str = "update") -> ApplyResult:
    """Write ``specs`` in one transaction; ``existing`` is "update", "skip" or "fail" for taken names."""
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.name.lower() in seen:
            raise ManifestError(f"{spec.source}: name: “{spec.name}” is also the name in {seen[spec.name.lower()]}")
        seen[spec.name.lower()] = spec.source
    result = ApplyResult()
    new_buckets: dict[str, PackageBucket] = {}
    try:
        with db.session.no_autoflush:
            for spec in specs:
                template = db.session.scalar(select(ContainerTemplate).where(ContainerTemplate.name == spec.name))
                if template is not None and existing == "skip":
                    result.skipped.append(spec.name)
                    continue
                if template is not None and existing == "fail":
                    raise ManifestError(f"{spec.source}: name: a template called “{spec.name}” already exists")
                (result.updated if template else result.created).append(spec.name)
                if template is None:
                    template = ContainerTemplate()
                    db.session.add(template)
                _fill(template, spec, new_buckets)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return result


def _fill(template: ContainerTemplate, spec: TemplateSpec, new_buckets: dict[str, PackageBucket]) -> None:
    for key in services.CONFIG_FIELDS:
        if key != "tags":
            setattr(template, key, getattr(spec, key))
    template.tags = services.join_tags(spec.tags)
    template.services = [TemplateService(**item) for item in spec.services]
    template.packages = [TemplatePackage(**item) for item in spec.packages]
    template.files = [TemplateFile(**item) for item in spec.files]
    template.scripts = [TemplateScript(position=position, **item) for position, item in enumerate(spec.scripts)]
    template.buckets = [_bucket(item, new_buckets) for item in spec.buckets]


def _bucket(item: dict, new_buckets: dict[str, PackageBucket]) -> PackageBucket:
    # An existing bucket is shared by other templates: attach it as it is rather than rewrite it.
    bucket = new_buckets.get(item["name"]) or db.session.scalar(
        select(PackageBucket).where(PackageBucket.name == item["name"])
    )
    if bucket is None:
        bucket = PackageBucket(name=item["name"], description=item["description"],
                               packages=[TemplatePackage(**p) for p in item["packages"]])
        db.session.add(bucket)
        new_buckets[item["name"]] = bucket
    return bucket
