"""What every templates view shares: the 404 lookups and the checked action form."""
from __future__ import annotations

from flask import abort

from app.container_templates import forms, services
from app.extensions import db
from app import htmx
from app.models import ContainerTemplate, PackageBucket


def page(html: str, status: int = 200):
    """A response that varies on HX-Request; under htmx the last flash becomes a toast."""
    return htmx.page(html, status, flashes_as_toast=True)


def invalid_page(html: str):
    """A re-rendered form with its errors: a normal page, as htmx only swaps 2xx answers and
    browsers log 4xx documents as failed loads."""
    return page(html)


def template_or_404(template_id: int) -> ContainerTemplate:
    """The template ``template_id``.

    :raise 404: when there is none.
    """
    template = services.get_template(template_id)
    if template is None:
        abort(404)
    return template


def child_or_404(template: ContainerTemplate, model, item_id: int):
    """The ``model`` row ``item_id`` of ``template``.

    :raise 404: when ``template`` has no such row.
    """
    item = services.child_of(template, model, item_id)
    if item is None:
        abort(404)
    return item


def bucket_or_404(bucket_id: int) -> PackageBucket:
    """The package bucket ``bucket_id``.

    :raise 404: when there is none.
    """
    bucket = db.session.get(PackageBucket, bucket_id)
    if bucket is None:
        abort(404)
    return bucket


def checked_action() -> None:
    """Check the CSRF token of a button-only POST.

    :raise 400: when it is missing or wrong.
    """
    if not forms.ActionForm().validate_on_submit():
        abort(400)
