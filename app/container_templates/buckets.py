"""``/templates/packages/…``: package buckets, named package lists templates can attach."""
from __future__ import annotations

from collections.abc import Callable

from flask import abort, flash, redirect, render_template, request, url_for

from app.container_templates import bp, forms, services
from app.container_templates.common import bucket_or_404, checked_action, invalid_page, page
from app.extensions import db
from app.models import TemplatePackage


def _render_buckets(invalid: bool = False, **overrides):
    buckets = services.list_buckets()
    bucket_forms = {}
    for bucket in buckets:
        bucket_forms[bucket.id] = {
            "rename": overrides.get(f"rename-{bucket.id}") or forms.BucketForm(
                formdata=None, obj=bucket, prefix=f"rename-{bucket.id}"),
            "add": overrides.get(f"add-{bucket.id}") or forms.PackageForm(formdata=None, prefix=f"add-{bucket.id}"),
            "import": overrides.get(f"import-{bucket.id}") or forms.BucketImportForm(
                formdata=None, prefix=f"import-{bucket.id}"),
        }
    html = render_template(
        "container_templates/buckets.html", buckets=buckets, bucket_forms=bucket_forms,
        new_bucket=overrides.get("new") or forms.BucketForm(formdata=None, prefix="new"),
        action_form=forms.ActionForm(formdata=None),
    )
    return invalid_page(html) if invalid else page(html)


def _back_to_buckets(bucket_id: int | None = None):
    return redirect(url_for(".buckets", _anchor=f"bucket-{bucket_id}" if bucket_id else None))


@bp.get("/packages")
def buckets():
    """Package buckets: named package lists templates can attach."""
    return _render_buckets()


def _bucket_form(form, key: str, change: Callable[[], tuple[str, int]]):
    """What every bucket form does: on a valid POST run ``change`` (a service call returning the message to
    flash and the bucket's id) and go back to that bucket; a TemplateError (each part of a "; "-joined one)
    goes to the field it names, and the page is shown again with ``form`` under ``key``."""
    if form.validate_on_submit():
        try:
            message, bucket_id = change()
        except services.TemplateError as error:
            db.session.rollback()
            field = form[error.field] if error.field in form else form.name
            field.errors.extend(error.message.split("; "))
        else:
            flash(message, "success")
            return _back_to_buckets(bucket_id)
    return _render_buckets(invalid=True, **{key: form})


@bp.post("/packages/new")
def create_bucket():
    """Create an empty bucket."""
    form = forms.BucketForm(prefix="new")

    def create():
        bucket = services.create_bucket(form.name.data, form.description.data)
        return f"Bucket “{bucket.name}” created.", bucket.id

    return _bucket_form(form, "new", create)


@bp.post("/packages/<int:bucket_id>/rename")
def rename_bucket(bucket_id: int):
    """Rename a bucket (and change its description)."""
    bucket = bucket_or_404(bucket_id)
    form = forms.BucketForm(prefix=f"rename-{bucket.id}")

    def rename():
        services.rename_bucket(bucket, form.name.data, form.description.data)
        return f"Bucket renamed to “{bucket.name}”.", bucket.id

    return _bucket_form(form, f"rename-{bucket.id}", rename)


@bp.post("/packages/<int:bucket_id>/add")
def add_bucket_package(bucket_id: int):
    """Add one package to a bucket."""
    bucket = bucket_or_404(bucket_id)
    form = forms.PackageForm(prefix=f"add-{bucket.id}")

    def add():
        services.add_package(bucket, form.manager.data, form.name.data, form.version.data)
        return f"“{form.name.data}” added to {bucket.name}.", bucket.id

    return _bucket_form(form, f"add-{bucket.id}", add)


@bp.post("/packages/<int:bucket_id>/import")
def import_bucket_packages(bucket_id: int):
    """Add packages pasted as text; any bad line and nothing is added."""
    bucket = bucket_or_404(bucket_id)
    form = forms.BucketImportForm(prefix=f"import-{bucket.id}")

    def add_all():
        added = services.import_bucket_packages(bucket, form.text.data, form.manager.data)
        return f"{added} package{'s' if added != 1 else ''} added to {bucket.name}.", bucket.id

    return _bucket_form(form, f"import-{bucket.id}", add_all)


@bp.post("/packages/<int:bucket_id>/packages/<int:package_id>/delete")
def remove_bucket_package(bucket_id: int, package_id: int):
    """Remove one package from a bucket."""
    bucket = bucket_or_404(bucket_id)
    package = db.session.get(TemplatePackage, package_id)
    if package is None or package.bucket_id != bucket.id:
        abort(404)
    checked_action()
    services.delete_child(package)
    flash(f"“{package.name}” removed from {bucket.name}.", "success")
    return _back_to_buckets(bucket.id)


@bp.route("/packages/<int:bucket_id>/delete", methods=["GET", "POST"])
def delete_bucket(bucket_id: int):
    """Confirm, then delete a bucket and its packages."""
    bucket = bucket_or_404(bucket_id)
    if request.method == "POST":
        checked_action()
        services.delete_bucket(bucket)
        flash(f"Bucket “{bucket.name}” deleted.", "success")
        return _back_to_buckets()
    return page(render_template("container_templates/bucket_delete.html", bucket=bucket,
                                 used_by=len(services.templates_with_bucket(bucket))))
