"""Proxboard: a self-hosted dashboard for Proxmox VE LXC containers."""
from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask, render_template, request
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from app import clusters
from app.config import load_config
from app.extensions import csrf, db, migrate
from app.htmx import is_htmx
from app.runtime import tune_garbage_collector


def create_app(test_config: dict | None = None, instance_path: str | None = None) -> Flask:
    """Build and configure a Proxboard application.

    ``instance_path`` (absolute) is the folder for ``config.py``, generated secrets and local
    databases; by default ``instance/`` beside the package. Tests pass their own, so a developer's
    instance folder is never read or written.
    """
    app = Flask(__name__, instance_relative_config=True, instance_path=instance_path)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    load_config(app, test_config)
    if app.config.get("PROXY_FIX"):
        hops = int(app.config["PROXY_FIX_HOPS"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_prefix=hops)
    configure_logging(app)
    register_extensions(app)
    app.url_map.converters["int"] = BoundedIntegerConverter
    register_blueprints(app)
    clusters.add_cluster_rules(app)
    register_errorhandlers(app)
    app.after_request(close_unsent_body)
    register_commands(app)
    register_shellcontext(app)
    register_template_helpers(app)
    if not app.testing:
        tune_garbage_collector(int(app.config["GC_YOUNG_THRESHOLD"]))
    return app


class BoundedIntegerConverter(IntegerConverter):
    """``<int:…>`` in every URL: 0 to 2**31 - 1, the range of an INTEGER id column on every database
    (and above Proxmox's largest VMID, 999999999), so a larger number is a 404, not a database error."""

    def __init__(self, map, *args, **kwargs) -> None:  # noqa: A002 - werkzeug's name
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(map, *args, **kwargs)


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def close_unsent_body(response):
    """Close the file of a response whose body is never sent (a 304 for a static file, a HEAD).

    Werkzeug drops such a body without closing it, so the file ``send_file`` opened stays open
    until the garbage collector finds it (a ResourceWarning, and a file descriptor held meanwhile).
    """
    if response.status_code in (304, 412) or request.method == "HEAD":
        close = getattr(response.response, "close", None)
        if close is not None:
            close()
            response.response = []
    return response


def configure_logging(app: Flask) -> None:
    """Log lines with a time and level, like ``flask worker``'s: the app's loggers at INFO, werkzeug's too
    (its per-request lines only outside demo mode).

    ``basicConfig`` adds a handler only when the root logger has none, so a second app, gunicorn
    with its own ``--log-config`` or the test runner keep theirs.
    """
    if app.testing:
        return
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # the schema check's "Context impl" lines; `db upgrade` sets its own
    if not app.debug:
        logging.getLogger("app").setLevel(logging.INFO)
    if app.config.get("DEMO_MODE"):
        # `make run`: a line per static file buried the one-time admin password; errors still show.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)


def register_extensions(app: Flask) -> None:
    """Bind the unbound extensions and the services that live on the app."""
    from app import audit, auth, clusters, input_guard, jobs, migration_guard, proxmox, render_cache, security_headers

    input_guard.init_app(app)
    security_headers.init_app(app)
    db.init_app(app)
    migrate.init_app(app, db, directory=str(Path(__file__).resolve().parent.parent / "migrations"))
    csrf.init_app(app)
    clusters.init_app(app)
    proxmox.init_app(app)
    render_cache.init_app(app)
    migration_guard.init_app(app)
    auth.init_app(app)
    audit.init_app(app)
    jobs.init_app(app)


def register_blueprints(app: Flask) -> None:
    """Mount one blueprint per feature."""
    from app.about import bp as about_bp
    from app.alerts import bp as alerts_bp
    from app.api import bp as api_bp
    from app.audit import bp as audit_bp
    from app.auth import bp as auth_bp
    from app.backups import bp as backups_bp
    from app.bulk import bp as bulk_bp
    from app.container_templates import bp as templates_bp
    from app.containers import bp as containers_bp
    from app.dashboard import bp as dashboard_bp
    from app.health import bp as health_bp
    from app.nodes import bp as nodes_bp
    from app.observability import bp as observability_bp
    from app.settings import bp as settings_bp
    from app.users import bp as users_bp
    from app.wizard import bp as wizard_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(dashboard_bp)
    app.register_blueprint(nodes_bp)
    app.register_blueprint(containers_bp)
    app.register_blueprint(templates_bp)
    app.register_blueprint(wizard_bp)
    app.register_blueprint(backups_bp)
    app.register_blueprint(alerts_bp)
    app.register_blueprint(bulk_bp)
    app.register_blueprint(about_bp)
    app.register_blueprint(audit_bp)
    app.register_blueprint(users_bp)
    app.register_blueprint(settings_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(observability_bp)


def register_errorhandlers(app: Flask) -> None:
    """Render friendly pages for the errors a user can meet (a database that is down: 503, see db_faults)."""
    from app import db_faults, problems

    db_faults.init_app(app)

    def render_error(error):
        db_faults.rollback_quietly()  # a failed request must not leave its transaction to the next one
        if db_faults.is_db_fault(getattr(error, "original_exception", None)):
            return db_faults.unavailable_response()
        code = getattr(error, "code", 500) or 500
        if code == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH") or 0
            error.description = (f"The request is larger than this server accepts ({limit // 1024} KiB); "
                                 "nothing was saved.")
        if problems.is_api_request():
            return problems.from_http_error(error)
        try:
            if is_htmx():
                return render_template("errors/_fragment.html", error=error, code=code), code
            return render_template("errors/error.html", error=error, code=code), code
        except Exception as exc:  # the layout reads the signed-in user: the database may be what failed
            if not db_faults.is_db_fault(exc):
                raise
            return db_faults.unavailable_response()

    for code in (400, 403, 404, 405, 413, 500):
        app.register_error_handler(code, render_error)


def register_commands(app: Flask) -> None:
    """Add the ``flask users|clusters|pve|ssh|credentials …`` groups and ``flask worker``."""
    from app.clusters.cli import clusters_cli
    from app.container_templates.cli import templates_cli
    from app.credentials.cli import credentials_cli
    from app.jobs import worker_command
    from app.proxmox.cli import pve_cli
    from app.ssh.cli import ssh_cli
    from app.users.cli import users_cli

    app.cli.add_command(users_cli)
    app.cli.add_command(clusters_cli)
    app.cli.add_command(pve_cli)
    app.cli.add_command(templates_cli)
    app.cli.add_command(ssh_cli)
    app.cli.add_command(credentials_cli)
    app.cli.add_command(worker_command)


def register_shellcontext(app: Flask) -> None:
    """``flask shell`` starts with ``db`` and every model imported."""

    def shell_context() -> dict:
        from app import models

        return {"db": db, **{name: getattr(models, name) for name in models.__all__
                             if isinstance(getattr(models, name), type) and issubclass(getattr(models, name), db.Model)}}

    app.shell_context_processor(shell_context)


def register_template_helpers(app: Flask) -> None:
    """Filters and globals used by every template."""
    from app import presenters

    presenters.init_app(app)
