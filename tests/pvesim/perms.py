"""Privileges of the simulated API token, evaluated like PVE::RPCEnvironment.

Follows pve-access-control ``PVE::RPCEnvironment`` (``check_api2_permissions``,
``exec_api2_perm_check``, ``check``/``check_any``, ``get_effective_permissions``) and
``PVE::AccessControl::roles`` (an ACL on a deeper path replaces what is inherited from
above; every simulated ACL entry propagates). Pools are ignored.
"""

from __future__ import annotations

import re

from .state import PVEError

# Privilege names per release (PVE::AccessControl $privgroups + Permissions.Modify).
_COMMON = [
    "VM.Config.Disk", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network", "VM.Config.HWType",
    "VM.Config.Options", "VM.Allocate", "VM.Clone", "VM.Migrate", "VM.Snapshot", "VM.Snapshot.Rollback",
    "VM.Config.CDROM", "VM.Config.Cloudinit", "VM.Console", "VM.Backup", "VM.PowerMgmt", "VM.Audit",
    "Sys.PowerMgmt", "Sys.Modify", "Sys.Incoming", "Sys.AccessNetwork", "Sys.Console", "Sys.Syslog",
    "Sys.Audit", "Datastore.Allocate", "Datastore.AllocateTemplate", "Datastore.AllocateSpace",
    "Datastore.Audit", "SDN.Allocate", "SDN.Audit", "SDN.Use", "Realm.Allocate", "User.Modify",
    "Group.Allocate", "Realm.AllocateUser", "Pool.Allocate", "Pool.Audit", "Mapping.Modify",
    "Mapping.Use", "Mapping.Audit", "Permissions.Modify",
]
PRIVILEGES = {
    "8.4": frozenset(_COMMON + ["VM.Monitor"]),
    "9.1": frozenset(_COMMON + ["VM.Replicate", "VM.GuestAgent.Audit", "VM.GuestAgent.Unrestricted",
                                "VM.GuestAgent.FileRead", "VM.GuestAgent.FileWrite",
                                "VM.GuestAgent.FileSystemMgmt"]),
}
# get_effective_permissions(): default / top level paths, plus every path with an ACL
DEFAULT_PATHS = ["/", "/access", "/access/groups", "/nodes", "/pool", "/sdn", "/storage", "/vms"]


def perm_error(what: str | None = None) -> PVEError:
    """PVE::Exception::raise_perm_exc"""
    return PVEError("Permission check failed" + (f" ({what})" if what else ""), 403)


def normalize_path(path: str | None) -> str | None:
    """PVE::AccessControl::normalize_path"""
    if not path:
        return None
    path = re.sub(r"/+", "/", path)
    path = re.sub(r"/$", "", path) or "/"
    if not path.startswith("/"):
        path = "/" + path
    if not re.match(r"^[A-Za-z0-9.\-_/]+$", path):
        return None
    return path


def template_replace(tmpl: str, data: dict) -> str:
    """PVE::Tools::template_replace ({name} -> value, '-' when unset or false)."""
    return re.sub(r"\{([^}]+)\}", lambda m: str(data.get(m.group(1)) or "-"), tmpl)


class TokenPrivileges:
    """``acl`` None = full privileges (a non-privilege-separated root@pam token: Administrator
    everywhere). Otherwise ``{path: set(privileges)}``; the deepest ACL path at or above a
    checked path decides (an empty set there means NoAccess)."""

    def __init__(self, version: str):
        self.version = version
        self.all_privs = PRIVILEGES[version]
        self.acl: dict[str, frozenset] | None = None
        self._cache: dict[str, frozenset] = {}

    @property
    def full(self) -> bool:
        return self.acl is None

    def set(self, privileges: dict | None):
        if privileges is None:
            self.acl, self._cache = None, {}
            return
        if not isinstance(privileges, dict):
            raise ValueError("privileges must be an object {path: [privilege, ...]} or null")
        acl = {}
        for path, privs in privileges.items():
            norm = normalize_path(path)
            if norm is None:
                raise ValueError(f"invalid ACL path '{path}'")
            if isinstance(privs, str):
                privs = [privs]
            for p in privs or []:
                if p not in self.all_privs:
                    raise ValueError(f"invalid privilege '{p}'")
            acl[norm] = frozenset(privs or [])
        self.acl, self._cache = acl, {}

    def to_dict(self):
        if self.acl is None:
            return None
        return {p: sorted(v) for p, v in sorted(self.acl.items())}

    def privs(self, path: str) -> frozenset:
        if self.acl is None:
            return self.all_privs
        hit = self._cache.get(path)
        if hit is not None:
            return hit
        res = frozenset()
        cur = path
        while True:
            if cur in self.acl:
                res = self.acl[cur]
                break
            if cur == "/":
                break
            cur = cur.rsplit("/", 1)[0] or "/"
        self._cache[path] = res
        return res

    # RPCEnvironment::check / check_any ----------------------------------------------------
    def has(self, path: str, privs, any_: bool = False) -> bool:
        if self.acl is None:
            return True
        have = self.privs(path)
        return any(p in have for p in privs) if any_ else all(p in have for p in privs)

    def check(self, path: str, privs, any_: bool = False):
        if self.acl is None:
            return
        have = self.privs(path)
        if any_:
            if not any(p in have for p in privs):
                raise perm_error(f"{path}, {'|'.join(privs)}")
            return
        for p in privs:
            if p not in have:
                raise perm_error(f"{path}, {p}")

    # RPCEnvironment::check_api2_permissions / exec_api2_perm_check ------------------------
    def check_api2(self, perm: dict, params: dict, authid: str):
        if self.acl is None:
            return
        if not perm:
            raise perm_error("user != root@pam")
        if perm.get("user") in ("all", "world"):
            return
        if perm.get("check"):
            self._exec(perm["check"], params, authid, noerr=False)
            return
        raise perm_error()

    def _exec(self, check, params, authid, noerr) -> bool:
        test = check[0]
        if test == "and":
            for sub in check[1:]:
                self._exec(sub, params, authid, False)
            return True
        if test == "or":
            for sub in check[1:]:
                if self._exec(sub, params, authid, True):
                    return True
            if noerr:
                return False
            raise perm_error()
        if test == "perm":
            tmpl, privs = check[1], check[2]
            opts = dict(zip(check[3::2], check[4::2]))
            req = opts.get("require_param")
            if req and params.get(req) is None:
                if noerr:
                    return False
                raise perm_error()
            path = normalize_path(template_replace(tmpl, params)) or "/"
            if self.has(path, privs, bool(opts.get("any"))):
                return True
            if noerr:
                return False
            self.check(path, privs, bool(opts.get("any")))
        if test == "userid-param":
            userid = params.get("userid")
            if check[1] == "self" and userid == authid:
                return True
            if check[1] == "Realm.AllocateUser":
                realm = (userid or "").split("@")[-1].split("!")[0]
                return self._exec(["perm", f"/access/realm/{realm}", ["Realm.AllocateUser"]],
                                  params, authid, noerr)
            if noerr:
                return False
            raise perm_error()
        if test == "userid-group":
            return self._exec(["perm", "/access/groups", check[1], "any", 1], params, authid, noerr)
        if test == "perm-modify":
            path = normalize_path(template_replace(check[1], params)) or "/"
            extra = {"storage": "Datastore.Allocate", "vms": "VM.Allocate", "pool": "Pool.Allocate"}
            privs = ["Permissions.Modify"]
            top = path.split("/")[1] if path.count("/") >= 2 else ""
            if top in extra:
                privs.append(extra[top])
            return self._exec(["perm", path, privs, "any", 1], params, authid, noerr)
        raise PVEError("unknown permission test")

    # GET /access/permissions --------------------------------------------------------------
    def effective(self, path: str | None = None) -> dict:
        if path:
            return {path: {p: 1 for p in sorted(self.privs(normalize_path(path) or path))}}
        paths = list(DEFAULT_PATHS)
        for p in (self.acl or {}):
            if p not in paths:
                paths.append(p)
        out = {}
        for p in paths:
            privs = self.privs(p)
            if privs:
                out[p] = {x: 1 for x in sorted(privs)}
        return out
