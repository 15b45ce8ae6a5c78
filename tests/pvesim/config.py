"""Editing a container's configuration: ``PUT /nodes/{node}/lxc/{vmid}/config`` with its pending section,
``GET …/pending``, and pending changes applied when the container starts.

Behaviour follows pve-container:

- ``src/PVE/API2/LXC/Config.pm`` ``update_vm``: ``no options specified``; the lock and the ``digest`` are checked
  first (``detected modified configuration - file changed by other user? Try again.``); ``delete`` and ``revert``
  of unknown options or of an option also given are parameter errors; the privileges of each changed key are
  checked (``PVE::LXC::check_ct_modify_config_perm``); a hotplug error writes nothing.
- ``src/PVE/LXC/Config.pm`` ``update_pct_config``: every change goes to the pending section first (``revert``
  drops one, deleting a key that is not set only warns, ``memory``/``rootfs``/``ostype`` cannot be deleted,
  ``unprivileged`` is read-only), then ``cleanup_pending`` drops what equals the current value; a stopped
  container applies all of it at once (``vmconfig_apply_pending``); a running one applies the fast-plug options
  (``$LXC_FASTPLUG_OPTIONS``) and hot-plugs memory, swap, cpulimit, cpuunits and netN
  (``vmconfig_hotplug_pending``); everything else stays pending until the next start (``PVE::LXC::vm_start``
  applies pending changes first, so a reboot does too).
- ``src/PVE/API2/LXC.pm`` ``vm_pending`` with pve-guest-common ``config_with_pending_array``: one item per key,
  ``value`` (current), ``pending`` (new value) and ``delete`` (1, or 2 when forced).
- ``GET …/config`` without ``current=1`` shows the pending values in place (``load_current_config``).
"""
from __future__ import annotations

import re

from .perms import perm_error
from .schema import split_list
from .state import Container, PVEError, normalize_tags, param_error

FASTPLUG = frozenset({"description", "onboot", "startup", "protection", "hostname", "hookscript", "cores", "tags",
                      "lock"})
HOTPLUG_DELETE = frozenset({"swap", "cpulimit", "cpuunits"})
HOTPLUG = frozenset({"cpulimit", "cpuunits", "memory", "swap"})
NET_RE = re.compile(r"^net\d+$")
NOT_OPTIONS = ("node", "vmid", "delete", "revert", "digest")


def _pending_delete(ct: Container) -> list[str]:
    return split_list(ct.pending.get("delete", ""))


def _set_pending_delete(ct: Container, keys: list[str]) -> None:
    if keys:
        ct.pending["delete"] = ",".join(keys)
    else:
        ct.pending.pop("delete", None)


def _remove_from_pending_delete(ct: Container, key: str) -> None:
    _set_pending_delete(ct, [k for k in _pending_delete(ct) if k != key])


def _cleanup_pending(ct: Container) -> None:
    """AbstractConfig::cleanup_pending: a pending value equal to the current one, or a pending delete of a key that
    is not set, is dropped."""
    for key in [k for k in ct.pending if k != "delete"]:
        if key in ct.config and str(ct.pending[key]) == str(ct.config[key]):
            del ct.pending[key]
    _set_pending_delete(ct, [k for k in _pending_delete(ct) if k in ct.config])


def apply_pending(ct: Container, selection: set[str] | None = None) -> None:
    """vmconfig_apply_pending: deletes, then values (a stopped container, or one starting)."""
    for key in _pending_delete(ct):
        if selection is None or key in selection:
            ct.config.pop(key, None)
            _remove_from_pending_delete(ct, key)
    _cleanup_pending(ct)
    for key in [k for k in ct.pending if k != "delete"]:
        if selection is None or key in selection:
            ct.config[key] = ct.pending.pop(key)


def _hotplug_pending(ct: Container, selection: set[str]) -> None:
    """vmconfig_hotplug_pending: fast-plug options at once; memory, swap, CPU limits and NICs hot-plugged; the
    rest (features, nameserver, entrypoint…) left pending."""
    for key in _pending_delete(ct):
        if key in selection and (key in FASTPLUG or key in HOTPLUG_DELETE or NET_RE.match(key)):
            ct.config.pop(key, None)
            _remove_from_pending_delete(ct, key)
    for key in [k for k in ct.pending if k != "delete"]:
        # a new mount point is hot-plugged (apply_pending_mountpoint); one over an existing mpN waits
        new_mount = re.match(r"^mp\d+$", key) and key not in ct.config
        if key in selection and (key in FASTPLUG or key in HOTPLUG or NET_RE.match(key) or new_mount):
            ct.config[key] = ct.pending.pop(key)


def _check_modify_perm(ctx, ct: Container, changed: dict, deletes: list[str]) -> None:
    """PVE::LXC::check_ct_modify_config_perm (the root@pam user skips it; an API token never is root@pam)."""
    if ctx.user == "root@pam":
        return
    path = f"/vms/{ct.vmid}"
    for key in [*changed, *deletes]:
        if key in ("cores", "cpuunits", "cpulimit"):
            ctx.check(path, ["VM.Config.CPU"])
        elif key == "rootfs" or re.match(r"^mp\d+$", key):
            ctx.check(path, ["VM.Config.Disk"])
        elif key in ("memory", "swap"):
            ctx.check(path, ["VM.Config.Memory"])
        elif NET_RE.match(key) or key in ("nameserver", "searchdomain", "hostname"):
            ctx.check(path, ["VM.Config.Network"])
        elif key == "features":
            if not ct.config.get("unprivileged"):
                raise perm_error("changing feature flags for privileged container is only allowed for root@pam")
            old = _flags(ct.config.get("features"))
            new = {} if key in deletes else _flags(changed.get("features"))
            differ = {f for f in old.keys() | new.keys() if old.get(f, "") != new.get(f, "")}
            if differ - {"nesting"}:
                raise perm_error("changing feature flags (except nesting) is only allowed for root@pam")
            if differ:
                ctx.check(path, ["VM.Allocate"])
        elif key == "tags":
            continue  # assert_tag_permissions: any tag is allowed with VM.Config.Options or by the default policy
        else:
            ctx.check(path, ["VM.Config.Options"])


def _flags(value) -> dict[str, str]:
    return dict(part.split("=", 1) for part in str(value or "").split(",") if "=" in part)


def update(api, ctx, p) -> None:
    """PUT /nodes/{node}/lxc/{vmid}/config (see the module docstring)."""
    ct = api.cluster.get_ct(p["node"], p["vmid"])
    changed = {k: v for k, v in p.items() if k not in NOT_OPTIONS and k != "debug"}
    deletes, reverts = split_list(p.get("delete", "")), split_list(p.get("revert", ""))
    if not changed and not deletes and not reverts:
        raise PVEError("no options specified")
    if ct.lock:
        raise PVEError(f"CT is locked ({ct.lock})")
    if p.get("digest") and p["digest"] != ct.digest():
        raise PVEError("detected modified configuration - file changed by other user? Try again.")
    for key in reverts:
        if not api._config_schema(key):
            raise param_error({"revert": f"unknown option '{key}'"})
        if key in changed:
            raise param_error({"revert": f"you can't use '-{key}' and '-revert {key}' at the same time"})
    for key in deletes:
        if not api._config_schema(key):
            raise param_error({"delete": f"unknown option '{key}'"})
        if key in changed:
            raise param_error({"delete": f"you can't use '-{key}' and -delete {key}' at the same time"})
        if key in reverts:
            raise param_error({"delete": f"you can't use '-delete {key}' and '-revert {key}' at the same time"})
    _check_modify_perm(ctx, ct, changed, deletes)

    for key in reverts:
        ct.pending.pop(key, None)
        _remove_from_pending_delete(ct, key)
    modified = set()
    for key in deletes:
        if key not in ct.config and key not in ct.pending:
            continue  # "cannot delete '$opt' - not set in current configuration!" is only a warning
        if key in ("memory", "rootfs", "ostype"):
            raise PVEError(f"unable to delete required option '{key}'")
        if key == "unprivileged":
            raise PVEError(f"unable to delete read-only option: '{key}'")
        modified.add(key)
        ct.pending.pop(key, None)
        if key not in _pending_delete(ct):
            _set_pending_delete(ct, [*_pending_delete(ct), key])
    for key, value in changed.items():
        if key == "unprivileged":
            raise PVEError(f"unable to modify read-only option: '{key}'")
        modified.add(key)
        if NET_RE.match(key):
            value = api._normalize_net(key, value, ct.vmid)  # print_lxc_network: a new MAC unless hwaddr is given
        elif key == "tags":
            value = normalize_tags(value)
        elif re.match(r"^mp\d+$", key):
            value = api._alloc_volume(key, value, ct.vmid, "local-lvm", int(key[2:]) + 1)
        else:
            value = api._coerce(key, value)
        ct.pending[key] = value
        _remove_from_pending_delete(ct, key)
    _cleanup_pending(ct)
    if ct.running:
        _hotplug_pending(ct, modified)
    else:
        apply_pending(ct, modified)
    if ct.config.get("tags") == "":
        ct.config.pop("tags")


def current_config(ct: Container, current: bool) -> dict:
    """GET …/config: the pending values in place unless ``current``."""
    cfg = dict(ct.config)
    if not current:
        cfg.update({k: v for k, v in ct.pending.items() if k != "delete"})
        for key in _pending_delete(ct):
            cfg.pop(key, None)
    cfg["digest"] = ct.digest()
    return cfg


def pending(api, ctx, p) -> list[dict]:
    """GET /nodes/{node}/lxc/{vmid}/pending: config_with_pending_array."""
    ct = api.cluster.get_ct(p["node"], p["vmid"])
    deletes = _pending_delete(ct)
    out = []
    conf = {**ct.config, "digest": ct.digest()}
    for key, value in conf.items():
        item = {"key": key, "value": str(value)}
        if key in ct.pending:
            item["pending"] = str(ct.pending[key])
        if key in deletes:
            item["delete"] = 1
        out.append(item)
    for key, value in ct.pending.items():
        if key != "delete" and key not in conf:
            out.append({"key": key, "pending": str(value), **({"delete": 1} if key in deletes else {})})
    out.extend({"key": key, "delete": 1} for key in deletes if key not in conf and key not in ct.pending)
    return out


def register(api, routes: dict) -> None:
    """Add the pending endpoint (``update`` is wired as ``Api.lxc_update``)."""
    routes[("GET", "/nodes/{node}/lxc/{vmid}/pending")] = lambda ctx, p: pending(api, ctx, p)
