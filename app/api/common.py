"""What every API view shares: JSON answers built through the models, paged lists with ``Link`` and ``ETag``,
request bodies read as the wizard's form data, and the refusals as problems."""
from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import current_app, request, url_for
from pydantic import BaseModel
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from app import problems
from app.api import schemas
from app.input_guard import json_offender
from app.models import Operation
from app.pagination import Page

MAX_LIST_VALUES = 100  # groups, enabled scripts, order: more than any template has


def answer(model: BaseModel, status: int = 200, headers: dict[str, str] | None = None):
    """``model`` as the JSON body of a ``status`` response."""
    response = current_app.response_class(model.model_dump_json(), status=status, mimetype="application/json")
    response.headers.update(headers or {})
    return response


def page_info(page: Page, per_page: int, total: int) -> schemas.PageInfo:
    """The ``page`` object of a list answer."""
    return schemas.PageInfo(number=page.number, per_page=per_page, pages=page.pages, total=total)


def list_answer(model: BaseModel, info: schemas.PageInfo, endpoint: str, query: dict[str, Any], **values):
    """A list page: ``Link`` to its first, previous, next and last pages (with the same ``query``), an
    ``ETag`` of its body, and 304 when ``If-None-Match`` holds it. ``values`` are the endpoint's URL arguments.

    ``Cache-Control: private, no-cache``: a client may keep it, but asks again (cheaply, with the ETag) each time.
    """
    response = answer(model)
    links = {"first": 1, "last": info.pages}
    if info.number > 1:
        links["prev"] = info.number - 1
    if info.number < info.pages:
        links["next"] = info.number + 1
    kept = {key: value for key, value in query.items() if value not in (None, "")}
    response.headers["Link"] = ", ".join(
        f'<{url_for(endpoint, **values, **kept, page=number, per_page=info.per_page)}>; rel="{rel}"'
        for rel, number in links.items())
    response.set_etag(hashlib.sha256(response.get_data()).hexdigest()[:32])
    response.headers["Cache-Control"] = "private, no-cache"
    return response.make_conditional(request)


def operation_model(operation: Operation) -> schemas.Operation:
    """An ``Operation`` row as the API shows it."""
    return schemas.Operation(
        id=operation.id, vmid=operation.container.vmid, action=operation.action, state=operation.state,
        step=operation.step, progress=operation.progress or 0, requested_by=operation.requested_by,
        started_at=operation.started_at, finished_at=operation.finished_at, error=operation.error,
        url=url_for("api.operation", operation_id=operation.id))


def json_body() -> Any:
    """The request's JSON body. Raises 415 when it is not JSON, 400 when it does not parse or holds NUL or
    control characters (naming the field)."""
    if not request.is_json:
        raise UnsupportedMediaType("Send the body as JSON (Content-Type: application/json).")
    try:
        body = json.loads(request.get_data(as_text=True))
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"The body is not valid JSON: {exc}.") from None
    refuse_control_characters(body)
    return body


def refuse_control_characters(body: Any) -> None:
    """Raise 400 naming the field when a decoded JSON ``body`` holds NUL or control characters."""
    where = json_offender(body)
    if where is not None:
        raise BadRequest(f"{where[0].upper()}{where[1:]} contains control characters (such as NUL) that Proxboard "
                         "does not accept; nothing was changed.")


class InvalidBody(Exception):
    """A body whose values cannot be read as form data; ``errors`` per field."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("invalid body")
        self.errors = errors


def form_values(body: Any) -> MultiDict:
    """A JSON object as the form data a browser would post: numbers as text, ``true`` as ``y`` and ``false`` as
    ``false`` (WTForms' own words), a list as repeated values, null as left out.

    Raises ``InvalidBody`` for a body that is no object, and per field for a nested object or a list too long.
    """
    if not isinstance(body, dict):
        raise InvalidBody({"body": ["Send a JSON object of the wizard's fields."]})
    values: MultiDict = MultiDict()
    errors: dict[str, list[str]] = {}
    for name, value in body.items():
        items = value if isinstance(value, list) else [value]
        if name == "order" and isinstance(value, list):
            items = [",".join(str(item) for item in value)]
        if len(items) > MAX_LIST_VALUES:
            errors[name] = [f"At most {MAX_LIST_VALUES} values."]
            continue
        for item in items:
            if item is None:
                continue
            if isinstance(item, (dict, list)):
                errors[name] = ["Not a valid value: give text, a number or true/false."]
                break
            values.add(name, "y" if item is True else "false" if item is False else str(item))
    if errors:
        raise InvalidBody(errors)
    return values


def invalid(errors: dict[str, list[str]], detail: str = "Some fields are not valid; nothing was created."):
    """The 422 listing each field's messages."""
    return problems.problem(422, detail, errors=errors)
