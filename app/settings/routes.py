"""``/settings/clusters``: the clusters Proxboard watches, with adding, editing, checking and removing one.

Who may come here is decided by the permission map (``app.auth.roles``: ``settings.`` is admin only). Every view
is a thin layer over ``app.clusters.services``: a refused setting re-renders the form with the service's sentence
and nothing changed. The ``default`` cluster is the environment's: listed and checked here, never edited or
removed. Secrets go one way: typed into a password field, stored encrypted, never rendered, flashed or logged.
"""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from app import audit
from app.clusters import services
from app.extensions import db
from app.proxmox import ProxmoxError
from app.settings import bp
from app.settings.forms import AddClusterForm, ClusterForm

FROM_ENVIRONMENT = ("The default cluster is set by the PROXBOARD_PVE_* and PROXBOARD_SSH_* environment variables; "
                    "change them there.")


def _cluster_or_404(name: str):
    """The cluster ``name``; :raise 404: when there is none."""
    try:
        return services.find_cluster(name)
    except LookupError as exc:
        abort(404, description=str(exc))


def _back():
    return redirect(url_for(".clusters"))


def _clusters_page(form: AddClusterForm):
    return render_template("settings/clusters.html", rows=services.list_clusters(), form=form)


@bp.get("/")
def index():
    """Settings has one page so far: the clusters."""
    return _back()


@bp.get("/clusters")
def clusters():
    """Every cluster (never a secret) and the form adding one."""
    return _clusters_page(AddClusterForm())


@bp.post("/clusters")
def add_cluster():
    """Add a cluster; a refused setting shows the form again with why, and adds nothing."""
    form = AddClusterForm()
    if form.validate_on_submit():
        try:
            cluster = services.add_cluster(form.name.data, form.settings())
        except services.ClusterError as exc:
            form.form_errors.append(str(exc))
        else:
            audit.record(request.endpoint, target=f"cluster {cluster.name}")  # the URL does not name it
            db.session.commit()
            flash(f"Cluster “{cluster.name}” added. Check it to see that Proxmox answers.", "success")
            return _back()
    return _clusters_page(form)


@bp.route("/clusters/<name>/edit", methods=["GET", "POST"])
def edit_cluster(name: str):
    """Change a cluster's settings; a secret left empty keeps the stored one."""
    cluster = _cluster_or_404(name)
    if cluster.is_default:
        flash(FROM_ENVIRONMENT, "error")
        return _back()
    form = ClusterForm(obj=cluster)
    if form.validate_on_submit():
        try:
            services.update_cluster(name, form.settings())
        except services.ClusterError as exc:
            form.form_errors.append(str(exc))
        else:
            flash(f"Cluster “{name}” saved.", "success")
            return _back()
    return render_template("settings/edit.html", cluster=cluster, form=form)


@bp.post("/clusters/<name>/check")
def check_cluster(name: str):
    """Ask the cluster's Proxmox for its version: connected, or why not."""
    try:
        version = services.check_cluster(name)
    except LookupError as exc:
        abort(404, description=str(exc))
    except ProxmoxError as exc:
        flash(f"{name}: {exc.message}", "error")
    else:
        flash(f"{name}: Connected: {version}.", "success")
    return _back()


@bp.route("/clusters/<name>/remove", methods=["GET", "POST"])
def remove_cluster(name: str):
    """Confirm, then remove the cluster and Proxboard's records of its containers (the guests stay in Proxmox)."""
    cluster = _cluster_or_404(name)
    if request.method == "GET":
        if cluster.is_default:
            flash("The default cluster comes from the environment and cannot be removed.", "error")
            return _back()
        row = next(row for row in services.list_clusters() if row.name == name)
        return render_template("settings/remove.html", row=row)
    try:
        forgotten = services.remove_cluster(name)
    except services.ClusterError as exc:
        flash(str(exc), "error")
    else:
        flash(f"Cluster “{name}” removed; {forgotten} container record{'s' if forgotten != 1 else ''} forgotten. "
              "Its guests are still in Proxmox.", "success")
    return _back()
