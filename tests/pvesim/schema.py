"""Load, index and enforce the Proxmox VE API schemas (8.4: ``apidoc.json``, 9.1: ``apidoc-9.1.json``).

The validator mirrors ``PVE::JSONSchema::check_prop`` / ``check_object`` /
``parse_property_string`` from pve-common, including the exact error texts
that end up in the ``errors`` object of a ``400 Parameter verification
failed.`` response.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import os
import re
import threading
from pathlib import Path
from urllib.parse import unquote

HERE = Path(__file__).resolve().parent
_CANDIDATES = {
    "8.4": [HERE / "apidoc.json.gz", HERE / "apidoc.json", Path("/work/shared/pve-api/apidoc.json")],
    "9.1": [HERE / "apidoc-9.1.json.gz", HERE / "apidoc-9.1.json", Path("/work/shared/pve-api/apidoc-9.1.json")],
}
SUPPORTED_VERSIONS = tuple(_CANDIDATES)

# Index ranges of "name[n]" schema keys (PVE expands them to name0..nameN).
INDEXED_MAX = {"net": 32, "mp": 256, "dev": 256, "unused": 256, "ipconfig": 32}
DEFAULT_INDEXED_MAX = 256


class FormatError(Exception):
    """A format validator died; ``str(e)`` is the Perl ``$@`` text."""


# --------------------------------------------------------------------------
# helpers copied in spirit from pve-common
# --------------------------------------------------------------------------

_NUMBER_RE = re.compile(r"^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$")
_INTEGER_RE = re.compile(r"^[+-]?\d+$")


def is_number(v: str) -> bool:
    return bool(_NUMBER_RE.match(v))


def is_integer(v: str) -> bool:
    return bool(_INTEGER_RE.match(v))


def split_list(text: str) -> list[str]:
    """PVE::Tools::split_list."""
    text = text or ""
    if "\0" in text:
        return text.split("\0")
    text = re.sub(r"[,;]", " ", text).strip()
    return [p for p in re.split(r"\s+", text) if p != ""]


def parse_size(value: str):
    m = re.match(r"^(\d+(\.\d+)?)([KMGT])?$", value)
    if not m:
        return None
    size = float(m.group(1))
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(m.group(3) or "", 1)
    return int(size * mult)


def format_size(size: int) -> str:
    size = int(size)
    for unit in ("", "K", "M", "G"):
        if size % 1024:
            return f"{size}{unit}"
        size //= 1024
    return f"{size}T"


def parse_boolean(v: str):
    if re.match(r"^(1|on|yes|true)$", v, re.I):
        return "1"
    if re.match(r"^(0|off|no|false)$", v, re.I):
        return "0"
    return None


def perl_regex(pattern: str) -> re.Pattern:
    p = pattern.replace("(?^:", "(?:").replace("(?^i:", "(?i:")
    return re.compile("^" + p + "$")


# --------------------------------------------------------------------------
# named formats
# --------------------------------------------------------------------------

_NAME_RE = r"([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)"
_DNS_RE = re.compile(rf"^({_NAME_RE}\.)*{_NAME_RE}$")
TAG_RE = re.compile(r"^[a-z0-9_][a-z0-9_\-+.]*$", re.I)


def _die(msg):
    raise FormatError(msg + "\n")


def _ipv4(v):
    try:
        ipaddress.IPv4Address(v)
        return True
    except ValueError:
        return False


def _ipv6(v):
    try:
        ipaddress.IPv6Address(v)
        return True
    except ValueError:
        return False


def _cidr(v, ipcheck, lo, hi):
    m = re.match(r"^(.+)/(\d+)$", v)
    return bool(m and ipcheck(m.group(1)) and lo < int(m.group(2)) <= hi)


def _f_vmid(v):
    if not re.match(r"^[1-9][0-9]{2,8}$", v):
        _die("value does not look like a valid VM ID")


def _f_node(v):
    if not re.match(r"^([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)$", v):
        _die("value does not look like a valid node name")


def _f_dns(v):
    if not _DNS_RE.match(v):
        _die("value does not look like a valid DNS name")


def _parse_id(v, kind):
    if not re.match(r"^[a-z][a-z0-9\-_.]*[a-z0-9]$", v, re.I):
        _die(f"{kind} ID '{v}' contains illegal characters")


def _f_configid(v):
    if not re.match(r"^[a-z][a-z0-9_-]+$", v, re.I):
        _die(f"invalid configuration ID '{v}'")


def _f_tag(v):
    if not TAG_RE.match(v):
        _die("invalid characters in tag")


def _f_mac(v):
    if not re.match(r"^[a-f0-9][02468ace](?::[a-f0-9]{2}){5}$", v, re.I):
        _die("value does not look like a valid unicast MAC address")


def _f_ipv4(v):
    if not _ipv4(v):
        _die("value does not look like a valid IPv4 address")


def _f_ipv6(v):
    if not _ipv6(v):
        _die("value does not look like a valid IPv6 address")


def _f_ip(v):
    if not (_ipv4(v) or _ipv6(v)):
        _die("value does not look like a valid IP address")


def _f_cidrv4(v):
    if not _cidr(v, _ipv4, 7, 32):
        _die("value does not look like a valid IPv4 CIDR network")


def _f_cidrv6(v):
    if not _cidr(v, _ipv6, 7, 128):
        _die("value does not look like a valid IPv6 CIDR network")


def _f_cidr(v):
    if not (_cidr(v, _ipv4, 7, 32) or _cidr(v, _ipv6, 7, 128)):
        _die("value does not look like a valid CIDR network")


def _f_ipv4_config(v):
    if not (v in ("dhcp", "manual") or _cidr(v, _ipv4, 7, 32)):
        _die("value does not look like a valid ipv4 network configuration")


def _f_ipv6_config(v):
    if not (v in ("auto", "dhcp", "manual") or _cidr(v, _ipv6, 7, 128)):
        _die("value does not look like a valid ipv6 network configuration")


def _f_iface(v):
    if not re.match(r"^[a-z][a-z0-9_]{1,20}([:.]\d+)?$", v, re.I):
        _die(f"invalid network interface name '{v}'")


def _f_bridge(v):
    if not re.match(r"^[-_.\w\d]+$", v):
        _die(f"invalid bridge ID '{v}'")


def _f_address(v):
    if not (_ipv4(v) or _ipv6(v) or _DNS_RE.match(v)):
        _die(f"value does not look like a valid address: {v}")


def _f_disk_size(v):
    if parse_size(v) is None:
        _die(f"value does not look like a valid disk size: {v}")


def _f_startup(v):
    ok = bool(v)
    for p in v.split(","):
        if re.match(r"^\s*$", p):
            continue
        if not re.match(r"^((order=)?\d+|up=\d+|down=\d+)$", p):
            ok = False
    if not ok:
        _die("unable to parse startup options")


def _f_poolid(v):
    if not re.match(r"^[A-Za-z0-9_\-/]+$", v):
        _die(f"pool name '{v}' contains invalid characters")


STORAGE_CONTENT = {"images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import", "none"}


def _f_storage_content(v):
    if v not in STORAGE_CONTENT:
        _die(f"invalid content type '{v}'")


def _f_urlencoded(v):
    if not re.match(r"^[-%a-zA-Z0-9_.!~*'()]*$", v):
        _die(f"invalid urlencoded string: {v}")


def _f_volume_id(v):
    if not re.match(r"^([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)$", v, re.I | re.S):
        _die(f"unable to parse volume ID '{v}'")


def _f_lxc_mp_string(v):
    if re.search(r"/\.\.?/", v) or re.search(r"/\.\.?$", v) or re.match(r"^/?\.\.?/", v):
        _die(f"{v} contains illegal character sequences")


def _f_ll_ip(v):
    addr = v.split("%", 1)[0]
    if not (_ipv4(addr) or _ipv6(addr)):
        _die(f"unable to parse IP address '{v}'")


def _f_realm(v):
    if not re.match(r"^[A-Za-z][A-Za-z0-9\.\-_]+$", v):
        _die(f"realm ID '{v}' contains illegal characters")


def _f_userid(v):
    if not re.match(r"^[^\s:/]+@[A-Za-z][A-Za-z0-9\.\-_]+$", v):
        _die(f"value '{v}' does not look like a valid user name")


def _f_task_status(v):
    if not re.match(r"^(ok|error|warning|unknown)$", v, re.I):
        _die(f"invalid status '{v}'")


def _f_timezone(v):
    if v not in ("host", "UTC") and not re.match(r"^[A-Za-z_]+(/[A-Za-z0-9_+\-]+)+$", v):
        _die(f"invalid time zone '{v}'")


FORMATS = {
    "pve-vmid": _f_vmid,
    "pve-node": _f_node,
    "dns-name": _f_dns,
    "pve-storage-id": lambda v: _parse_id(v, "storage"),
    "pve-sdn-zone-id": lambda v: _parse_id(v, "SDN zone"),
    "pve-configid": _f_configid,
    "pve-tag": _f_tag,
    "mac-addr": _f_mac,
    "ipv4": _f_ipv4,
    "ipv6": _f_ipv6,
    "ip": _f_ip,
    "CIDR": _f_cidr,
    "CIDRv4": _f_cidrv4,
    "CIDRv6": _f_cidrv6,
    "pve-ipv4-config": _f_ipv4_config,
    "pve-ipv6-config": _f_ipv6_config,
    "pve-iface": _f_iface,
    "pve-bridge-id": _f_bridge,
    "address": _f_address,
    "disk-size": _f_disk_size,
    "pve-startup-order": _f_startup,
    "pve-poolid": _f_poolid,
    "pve-storage-content": _f_storage_content,
    "urlencoded": _f_urlencoded,
    "pve-volume-id": _f_volume_id,
    "pve-lxc-mp-string": _f_lxc_mp_string,
    "lxc-ip-with-ll-iface": _f_ll_ip,
    "pve-realm": _f_realm,
    "pve-userid": _f_userid,
    "pve-task-status-type": _f_task_status,
    "pve-ct-timezone": _f_timezone,
}


def check_format(fmt, value: str, path: str):
    """Raise FormatError like PVE::JSONSchema::check_format."""
    if isinstance(fmt, dict):
        parse_property_string(fmt, value, path)
        return
    if fmt == "regex":
        return
    m = re.match(r"^(.*?)(?:-(list|opt))?$", fmt)
    name, kind = m.group(1), m.group(2)
    validator = FORMATS.get(name)
    if validator is None:
        validator = FORMATS.get(fmt)
        kind = None
    if validator is None:
        return  # unknown / hash-registered format: accepted (loose)
    if kind == "list":
        for item in split_list(value):
            validator(item)
    elif kind == "opt":
        if value:
            validator(value)
    else:
        validator(value)


def parse_property_string(fmt: dict, data: str, path: str) -> dict:
    res: dict[str, str] = {}
    default_key = None
    for part in data.split(","):
        if re.match(r"^\s*$", part):
            continue
        m = re.match(r"^([^=]+)=(.+)$", part, re.S)
        if m:
            k, v = m.group(1), m.group(2)
            if k in res:
                _die(f"duplicate key in comma-separated list property: {k}")
            schema = fmt.get(k)
            if schema and schema.get("alias"):
                if schema.get("keyAlias"):
                    res[schema["keyAlias"]] = k
                k = schema["alias"]
                schema = fmt.get(k)
            if not schema:
                _die(f"invalid key in comma-separated list property: {k}")
            if schema.get("type") == "boolean":
                v = parse_boolean(v) or v
            res[k] = v
        elif "=" not in part:
            if default_key:
                _die(f"duplicate key in comma-separated list property: {default_key}")
            for key, sch in fmt.items():
                if sch.get("default_key"):
                    default_key = key
                    if not res.get(key):
                        res[key] = part
                        break
                    _die(f"duplicate key in comma-separated list property: {default_key}")
            if not default_key:
                _die("value without key, but schema does not define a default key")
        else:
            _die("missing key in comma-separated list property")
    errors: dict[str, str] = {}
    check_object(path, fmt, res, False, errors)
    if errors:
        raise FormatError("format error\n" + "".join(f"{k}: {v}\n" for k, v in errors.items()))
    return res


def add_error(errors, path, msg):
    path = path or "_root"
    if path in errors:
        errors[path] = errors[path] + "\\n" + msg
    else:
        errors[path] = msg


def check_type(path, typ, value, errors) -> bool:
    if not typ or typ in ("any", "string"):
        return True
    if typ == "boolean":
        if value in ("1", "0"):
            return True
    elif typ == "integer":
        if is_integer(value):
            return True
    elif typ == "number":
        if is_number(value):
            return True
    elif typ in ("array", "object"):
        add_error(errors, path, f"type check ('{typ}') failed")
        return False
    else:
        return True
    add_error(errors, path, f"type check ('{typ}') failed - got '{value}'")
    return False


def check_prop(value, schema, path, errors):
    if value is None:
        if not schema.get("optional") and not schema.get("alias") and not schema.get("group"):
            add_error(errors, path, "property is missing and it is not optional")
        return
    if isinstance(value, list):  # repeated array parameter (type array)
        if schema.get("type") != "array":
            value = "\0".join(value)
        else:
            return
    if schema.get("type") == "array":
        return  # arrays are passed as repeated query params; accepted
    if not check_type(path, schema.get("type"), value, errors):
        return
    fmt = schema.get("format")
    if fmt:
        try:
            check_format(fmt, value, path)
        except FormatError as e:
            add_error(errors, path, f"invalid format - {e}")
            return
    pattern = schema.get("pattern")
    if pattern:
        if not _compiled(pattern).match(value):
            add_error(errors, path, "value does not match the regex pattern")
            return
    mx = schema.get("maxLength")
    if mx is not None and len(value) > int(mx):
        add_error(errors, path, f"value may only be {mx} characters long")
        return
    mn = schema.get("minLength")
    if mn is not None and len(value) < int(mn):
        add_error(errors, path, f"value must be at least {mn} characters long")
        return
    if is_number(value):
        num = float(value)
        if schema.get("maximum") is not None and num > float(schema["maximum"]):
            add_error(errors, path, f"value must have a maximum value of {schema['maximum']}")
            return
        if schema.get("minimum") is not None and num < float(schema["minimum"]):
            add_error(errors, path, f"value must have a minimum value of {schema['minimum']}")
            return
    enum = schema.get("enum")
    if enum and value not in [str(e) for e in enum]:
        add_error(
            errors, path,
            f"value '{value}' does not have a value in the enumeration '{', '.join(str(e) for e in enum)}'",
        )


_PATTERN_CACHE: dict[str, re.Pattern] = {}


def _compiled(pattern: str) -> re.Pattern:
    c = _PATTERN_CACHE.get(pattern)
    if c is None:
        c = _PATTERN_CACHE[pattern] = perl_regex(pattern)
    return c


def check_object(path, props: dict, value: dict, additional, errors, indexed=()):
    for k, sch in props.items():
        check_prop(value.get(k), sch, f"{path}.{k}" if path else k, errors)
    for k in value:
        newpath = f"{path}.{k}" if path else k
        sch = props.get(k)
        if sch is None:
            for rx, isch in indexed:
                if rx.match(k):
                    sch = isch
                    check_prop(value[k], sch, newpath, errors)
                    break
        if sch is not None:
            req = sch.get("requires")
            if isinstance(req, str) and value.get(req) is None:
                add_error(errors, f"{path}.{req}" if path else req,
                          f"missing property - '{newpath}' requires this property")
            continue
        if not additional:
            add_error(errors, newpath,
                      "property is not defined in schema and the schema does not allow additional properties")


# --------------------------------------------------------------------------
# endpoint index
# --------------------------------------------------------------------------

class Endpoint:
    __slots__ = ("method", "path", "info", "props", "indexed", "additional", "allowtoken", "name",
                 "permissions", "reaches_node")

    def __init__(self, method: str, path: str, info: dict):
        self.method = method
        self.path = path
        self.info = info
        self.name = info.get("name")
        self.allowtoken = info.get("allowtoken", 1) != 0
        self.permissions = info.get("permissions") or {}
        # Whether answering needs the node in the URL: pveproxy forwards a ``proxyto`` method to that node
        # (PVE::APIServer::AnyEvent, 595 when it is down); the others answer from the node asked, out of the
        # cluster-wide state (RRD files, directory indexes), but for a console, which reaches the node itself
        # (pve-container termproxy: ssh to the node; vncwebsocket: the port termproxy opened there).
        self.reaches_node = bool(info.get("proxyto")) or path.endswith(("/termproxy", "/vncwebsocket"))
        params = info.get("parameters") or {}
        self.additional = bool(params.get("additionalProperties"))
        self.props: dict[str, dict] = {}
        indexed = []
        for k, v in (params.get("properties") or {}).items():
            m = re.match(r"^([a-z][a-z0-9_-]*)\[n\]$", k)
            if m:
                base = m.group(1)
                hi = INDEXED_MAX.get(base, DEFAULT_INDEXED_MAX) - 1
                rx = re.compile(rf"^{re.escape(base)}(0|[1-9]\d*)$")
                indexed.append((_IndexRe(rx, hi), v))
            else:
                self.props[k] = v
        self.indexed = tuple(indexed)

    def validate(self, params: dict) -> dict:
        errors: dict[str, str] = {}
        check_object("", self.props, params, self.additional, errors, self.indexed)
        return errors


class _IndexRe:
    def __init__(self, rx, hi):
        self.rx, self.hi = rx, hi

    def match(self, key):
        m = self.rx.match(key)
        return bool(m and int(m.group(1)) <= self.hi)


class _TrieNode:
    __slots__ = ("lit", "var", "varname", "methods", "path")

    def __init__(self):
        self.lit: dict[str, _TrieNode] = {}
        self.var: _TrieNode | None = None
        self.varname: str | None = None
        self.methods: dict[str, Endpoint] = {}
        self.path = ""


class Schema:
    def __init__(self, tree: list):
        self.root = _TrieNode()
        self.endpoints: dict[tuple[str, str], Endpoint] = {}
        self._walk(tree)

    def _walk(self, nodes):
        for n in nodes:
            info = n.get("info") or {}
            if info:
                node = self._insert(n["path"])
                for method, minfo in info.items():
                    ep = Endpoint(method, n["path"], minfo)
                    node.methods[method] = ep
                    self.endpoints[(method, n["path"])] = ep
            self._walk(n.get("children") or [])

    def _insert(self, path: str) -> _TrieNode:
        cur = self.root
        for seg in [s for s in path.split("/") if s]:
            if seg.startswith("{") and seg.endswith("}"):
                if cur.var is None:
                    cur.var = _TrieNode()
                    cur.varname = seg[1:-1]
                cur = cur.var
            else:
                cur = cur.lit.setdefault(seg, _TrieNode())
        cur.path = path
        return cur

    def children(self, template: str) -> list[str]:
        """Names of the child sub-directories of a path template (for index handlers)."""
        cur = self.root
        for seg in [s for s in template.split("/") if s]:
            cur = cur.var if seg.startswith("{") else cur.lit.get(seg)
            if cur is None:
                return []
        return sorted(cur.lit)

    def lookup(self, method: str, rel_path: str):
        """Return (endpoint|None, path_params). Raw path segments are URL-decoded."""
        segs = [unquote(s) for s in rel_path.split("/") if s]
        found = self._match(self.root, segs, 0, {})
        if not found:
            return None, {}
        node, params = found
        return node.methods.get(method), params

    def _match(self, node, segs, i, params):
        if i == len(segs):
            return (node, params) if node.methods else None
        seg = segs[i]
        child = node.lit.get(seg)
        if child is not None:
            r = self._match(child, segs, i + 1, params)
            if r:
                return r
        if node.var is not None:
            r = self._match(node.var, segs, i + 1, {**params, node.varname: seg})
            if r:
                return r
        return None


_SCHEMAS: dict[str, Schema] = {}
_LOCK = threading.Lock()


def load_schema(version: str = "9.1") -> Schema:
    """Load and index the schema of a PVE release ("9.1" or "8.4") once per process.
    ``PVESIM_APIDOC`` (8.4) / ``PVESIM_APIDOC_91`` (9.1) point at another apidoc.json."""
    if version not in _CANDIDATES:
        raise ValueError(f"unsupported PVE version {version!r} (supported: {', '.join(SUPPORTED_VERSIONS)})")
    with _LOCK:
        schema = _SCHEMAS.get(version)
        if schema is None:
            override = os.environ.get("PVESIM_APIDOC" if version == "8.4" else "PVESIM_APIDOC_91")
            paths = [Path(override)] if override else _CANDIDATES[version]
            for p in paths:
                if p.exists():
                    opener = gzip.open if p.suffix == ".gz" else open
                    with opener(p, "rt", encoding="utf-8") as fh:
                        schema = _SCHEMAS[version] = Schema(json.load(fh))
                    break
            else:
                raise FileNotFoundError("apidoc.json not found in %s" % paths)
        return schema
