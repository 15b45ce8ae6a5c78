"""Shared fixtures live in tests/fixtures/, one plugin module per real part."""

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
