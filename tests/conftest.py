"""Shared fixtures live in tests/fixtures/, one plugin module per real part."""
import os

# An app built outside TESTING freezes its process's heap for the collector (app/runtime.py): the suite builds
# many apps in one process, and tests/test_config.py checks that tuning in processes of its own.
os.environ["PROXBOARD_GC_YOUNG_THRESHOLD"] = "0"

pytest_plugins = [
    "tests.fixtures.pve",
    "tests.fixtures.pvesim_http",
    "tests.fixtures.database",
    "tests.fixtures.app",
    "tests.fixtures.factories",
    "tests.fixtures.browser",
    "tests.fixtures.ssh",
    "tests.fixtures.redis",
    "tests.fixtures.oidc",
    "tests.fixtures.receivers",
]

# -- spreading the suite over the two workers (pyproject: -n 2 --dist loadscope --no-loadscope-reorder) ----------
# A module runs on one worker so its fixtures are shared, and modules go out in collection order: the longest ones
# first (measured with --junitxml), so that neither worker is left with a long module at the end while the other
# idles. Each test of the modules in OWN_SCOPE is a unit of its own: the hostile-input walk on SQLite and on
# PostgreSQL (minutes each) and the real-template runs then go to both workers at once.
LONGEST_FIRST = ("test_hostile_input", "test_catalog_real", "test_layout_browser", "test_provisioning")
OWN_SCOPE = ("tests/test_hostile_input.py::", "tests/test_catalog_real.py::")


def pytest_collection_modifyitems(config, items):
    """Stable-sort the collection: the modules of ``LONGEST_FIRST`` first, in that order."""
    rank = {name: number for number, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py"), len(rank)))


def pytest_xdist_make_scheduler(config, log):
    """xdist's loadscope scheduling, with the tests of ``OWN_SCOPE`` modules each a scope of its own."""
    from xdist.scheduler import LoadScopeScheduling

    class Scheduler(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return nodeid if nodeid.startswith(OWN_SCOPE) else super()._split_scope(nodeid)

    return Scheduler(config, log)
