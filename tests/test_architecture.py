"""The import graph of ``app``: no circle between modules, and no arrow from a lower room to a higher one.

Every ``import`` counts, at module level or inside a function (ast, not runtime), except a
package's ``__init__`` importing its own route modules after defining ``bp`` (the blueprint
pattern: the route modules import ``bp`` back, which is the one arrow a package may close on itself).
"""
from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app"

# Lowest first; a module may import its own layer or lower ones, never a higher one.
LAYERS: list[set[str]] = [
    {"models", "extensions", "config", "runtime", "htmx", "forms", "events", "presenters", "input_guard",
     "migration_guard", "jobs", "security_headers", "pagination", "db_faults", "problems"},
    {"proxmox", "ssh", "credentials", "audit", "auth", "health", "cli", "render_cache", "clusters"},
    {"guest_services", "container_templates", "provisioning", "users", "metrics"},
    {"containers"},
    {"dashboard", "wizard", "about", "backups", "bulk", "alerts", "nodes", "observability", "api", "settings"},
    {"app"},  # the factory, app/__init__.py
]
# The one arrow up, on purpose: a queue consumer started outside ``flask worker`` builds its app.
ALLOWED_UP = {("app.jobs", "app")}
# Circles closed only by a function-level import; listed so that no new one slips in and a fixed one
# must be struck off. None left: services enqueue their jobs by name through app.jobs, and the
# dashboard hands the inventory the function that settles an operation.
KNOWN_LAZY_CIRCLES: set[str] = set()


def _module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "app"


def _layer(module: str) -> int:
    room = _room(module)
    for number, rooms in enumerate(LAYERS):
        if room in rooms:
            return number
    raise AssertionError(f"{module}: its room {room!r} is in no layer of tests/test_architecture.py")


def _imports(path: Path, module: str, modules: set[str]) -> set[str]:
    """The ``app`` modules ``path`` imports (``from app.x import y`` names module ``app.x.y`` when it is one)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in modules and name != module)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module name to the ``app`` modules it imports."""
    paths = {(_module_name(path)): path for path in APP.rglob("*.py")}
    modules = set(paths)
    graph = {module: _imports(path, module, modules) for module, path in paths.items()}
    for module, path in paths.items():  # the blueprint pattern: __init__ → its route modules → bp
        if path.name == "__init__.py":
            graph[module] = {target for target in graph[module]
                             if not (target.startswith(module + ".") and module in graph.get(target, ()))}
    return graph


def test_every_room_has_a_layer():
    for module in import_graph():
        _layer(module)


def test_no_import_points_up():
    graph = import_graph()
    upward = sorted(f"{module} ({LAYERS[_layer(module)]}) imports {target}"
                    for module, targets in graph.items() for target in targets
                    if _layer(target) > _layer(module) and (module, target) not in ALLOWED_UP)
    assert upward == []


def test_no_import_circle():
    graph = import_graph()
    circles, state = [], {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                circles.append(" → ".join(trail[trail.index(target):] + [target]))
            elif target not in state:
                visit(target, trail + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert set(circles) == KNOWN_LAZY_CIRCLES


def test_flask_shell_has_db_and_the_models(app):
    with app.app_context():
        context = app.make_shell_context()
    assert context["db"] is not None
    assert {"Container", "Operation", "Event", "Service", "User"} <= set(context)


# Where raw request data may be read: the form layer itself, the guard that refuses NUL and control
# characters before any form sees them, and the login throttle's key (it runs before the view's form).
RAW_REQUEST_READERS = {"app.forms", "app.input_guard", "app.auth.throttle"}


def test_views_read_query_strings_and_forms_only_through_forms():
    readers = set()
    for path in APP.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Attribute) and node.attr in ("args", "form", "values")
                    and isinstance(node.value, ast.Name) and node.value.id == "request"):
                readers.add(_module_name(path))
    assert readers == RAW_REQUEST_READERS
