"""Bulk guest actions of PVE 9.1 (``/cluster/bulk-action/guest/start|shutdown`` and their GET indexes).

Behaviour follows pve-manager ``PVE/API2/Cluster/BulkAction/Guest.pm`` (``handle_task_foreach_guest``):

- one task (``bulk-start`` / ``bulk-shutdown``, empty id) on the node that received the request, by the
  user who asked; ``VM.PowerMgmt`` is checked on ``/vms/<ID>`` for every listed guest before it starts;
- guests are taken in startup order (``startup: order=N``, reversed for shutdown), then by VMID, at most
  ``maxworkers`` (default 4) guest tasks at a time, each an ordinary ``vzstart`` / ``vzshutdown`` task on
  the guest's own node started through the API as that user;
- the log says ``Starting guests: 101, 102`` then per guest ``Starting CT 101`` or ``WARN: Skipping CT 101,
  already running.`` (``Shutting down CT 101 (Timeout = 180 seconds)`` / ``WARN: Skipping CT 101, not
  running.``); a guest task that fails is logged ``WARN: Starting CT 101 failed: <exit status>`` (shutdown:
  ``WARN: Stopping CT 101 failed: …``), and the bulk task then fails with ``Some guests failed to start:
  101, 105`` (``Some guests failed to shutdown 101, 105``). Real Proxmox ends a task that only skipped
  guests ``WARNINGS: n``; the simulator ends it ``OK``.
"""
from __future__ import annotations

import re

from .state import PVEError, param_error

INDEX = [{"name": "start"}, {"name": "shutdown"}, {"name": "migrate"}, {"name": "suspend"}]


class BulkActions:
    """The handlers; ``register`` adds them to the API's route table (9.1 only)."""

    def __init__(self, api):
        self.api = api
        self.sim = api.sim
        self.cluster = api.cluster

    def register(self, routes: dict) -> None:
        routes[("GET", "/cluster/bulk-action")] = lambda ctx, p: [{"name": "guest"}]
        routes[("GET", "/cluster/bulk-action/guest")] = lambda ctx, p: list(INDEX)
        routes[("POST", "/cluster/bulk-action/guest/start")] = self.start
        routes[("POST", "/cluster/bulk-action/guest/shutdown")] = self.shutdown

    @staticmethod
    def _listed(p) -> list[str]:
        """The ``vms`` array: a repeated parameter reaches the handler joined by NUL, as pve-http-server does."""
        raw = p.get("vms")
        values = raw if isinstance(raw, list) else str(raw or "").split("\x00")
        return [str(v) for v in values if str(v)]

    def _guests(self, ctx, p) -> list:
        vmids = [int(v) for v in self._listed(p)]
        for vmid in vmids:
            ctx.check(f"/vms/{vmid}", ["VM.PowerMgmt"])
        if not vmids:
            ctx.check("/", ["VM.PowerMgmt"])
        with self.cluster.lock:
            cts = [ct for ct in self.cluster.containers.values() if not vmids or ct.vmid in vmids]
        return cts

    @staticmethod
    def _order(ct) -> int:
        m = re.search(r"order=(\d+)", str(ct.config.get("startup") or ""))
        return int(m.group(1)) if m else 2**63 - 1

    def _workers(self, p) -> int:
        value = int(p.get("maxworkers") or 4)
        if not 1 <= value <= 64:
            raise param_error({"maxworkers": "value must have a minimum value of 1 and a maximum value of 64"})
        return value

    def _receiving_node(self) -> str:
        return next(node for node in self.cluster.nodes if self.sim.node_online(node))

    def _run(self, ctx, p, typ: str, batches, begin, failed_word: str, failed_summary: str):
        """Start ``begin(task, ct)`` (a UPID, or None when skipped) per guest, at most maxworkers at once."""
        workers = self._workers(p)

        def worker(task):
            failed = []
            for batch in batches:
                running: dict[str, object] = {}
                for ct in batch:
                    while len(running) >= workers:
                        self._reap(task, running, failed, failed_word, block=False)
                        self.sim.tasks.sleep(0.05, task)
                    try:
                        upid = begin(task, ct)
                    except PVEError as exc:
                        task.log(f"WARN: {exc}")
                        failed.append(ct.vmid)
                        continue
                    if upid:
                        running[upid] = ct
                while running:
                    self._reap(task, running, failed, failed_word, block=True)
            if failed:
                raise PVEError(failed_summary + ", ".join(str(v) for v in failed))

        return self.sim.tasks.spawn(self._receiving_node(), typ, "", ctx.user, worker)

    def _reap(self, task, running, failed, failed_word, block: bool):
        for upid, ct in list(running.items()):
            guest = self.cluster.tasks_by_upid.get(upid)
            if guest is None:
                continue
            if block:
                guest.done.wait(30)
            if guest.status == "running":
                continue
            del running[upid]
            status = guest.exitstatus or ""
            if status != "OK" and not status.startswith("WARNINGS"):
                failed.append(ct.vmid)
                task.log(f"WARN: {failed_word} CT {ct.vmid} failed: {status}")

    def _batches(self, cts, reverse: bool = False):
        orders = sorted({self._order(ct) for ct in cts}, reverse=reverse)
        return [sorted((ct for ct in cts if self._order(ct) == order), key=lambda c: c.vmid) for order in orders]

    def start(self, ctx, p):
        cts = self._guests(ctx, p)
        listed = ", ".join(self._listed(p))

        def begin(task, ct):
            if not task.lines:
                task.log(f"Starting guests: {listed}" if listed else "Starting all guests")
            if ct.running:
                task.log(f"WARN: Skipping CT {ct.vmid}, already running.")
                return None
            task.log(f"Starting CT {ct.vmid}")
            return self.api.lxc_start(ctx, {"node": ct.node, "vmid": str(ct.vmid)})

        return self._run(ctx, p, "bulk-start", self._batches(cts), begin, "Starting", "Some guests failed to start: ")

    def shutdown(self, ctx, p):
        cts = self._guests(ctx, p)
        listed = ", ".join(self._listed(p))
        timeout = int(p.get("timeout") or 180)
        force = str(p.get("force-stop", "1")) == "1"

        def begin(task, ct):
            if not task.lines:
                task.log(f"Shutting down guests: {listed}" if listed else "Shutting down all guests")
            if not ct.running:
                task.log(f"WARN: Skipping CT {ct.vmid}, not running.")
                return None
            task.log(f"Shutting down CT {ct.vmid} (Timeout = {timeout} seconds)")
            return self.api.lxc_shutdown(ctx, {"node": ct.node, "vmid": str(ct.vmid), "timeout": str(timeout),
                                               "forceStop": "1" if force else "0"})

        return self._run(ctx, p, "bulk-shutdown", self._batches(cts, reverse=True), begin, "Stopping",
                         "Some guests failed to shutdown ")
