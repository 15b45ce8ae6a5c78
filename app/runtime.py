"""How a Proxboard process runs Python's cyclic garbage collector.

Every render without a cached answer decodes Proxmox's ``/cluster/resources`` (a dict per guest: 10,000 at
10,000 containers) and reads as many records. With CPython's defaults (a young collection every 700
allocations, and full ones over every object alive) those allocations set off collections that walk the
whole heap, most of it the application itself (about 300,000 objects: modules, SQLAlchemy's and WTForms'
classes, routes): about 150 of the 380 ms a 10,000-container page took, cache off (``make bench``). What
was built at start is kept for the process's life, so it is moved out of the collector's sight
(``gc.freeze``, CPython's tool for long-lived start-up state), and young collections run every ``young``
allocations instead of 700: the per-request objects are freed by reference counting either way; the
collector only finds cycles.
"""
from __future__ import annotations

import gc

_tuned = False


def tune_garbage_collector(young: int) -> bool:
    """Collect once, freeze what is alive (the application as built) and run young collections every
    ``young`` net allocations (``gc.set_threshold``; the older generations keep their thresholds).
    Once per process (a second app in the same process changes nothing): True when it was done now."""
    global _tuned
    if _tuned or young <= 0:
        return False
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young, middle, old)
    _tuned = True
    return True
