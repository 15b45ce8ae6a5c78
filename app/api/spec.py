"""The OpenAPI 3.1 document of ``/api/v1``, generated from the code.

Each view says what it takes and answers with ``@documented(...)`` (pydantic models from ``schemas``); ``build``
walks the app's URL map for the ``api.`` endpoints, turns each werkzeug rule into an OpenAPI path (``<int:vmid>``
is ``{vmid}``, an integer within the URL converter's range; ``<any(a, b):x>`` an enum), and hands the paths and
the models' JSON Schema (2020-12, OpenAPI 3.1's own dialect, hoisted into ``components/schemas``) to apispec,
which assembles the document. A view without ``@documented`` (the document and its reader) is left out.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from apispec import APISpec
from flask import Flask
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from werkzeug.routing import AnyConverter, IntegerConverter

from app.api import schemas

TITLE = "Proxboard API"
VERSION = "1"
REF = "#/components/schemas/{model}"
PROBLEM = "application/problem+json"
# Every operation may meet these: a token refused or missing, a role too low, refused tokens throttled,
# Proxmox or the database away, a query string out of its limits.
COMMON_PROBLEMS = {
    400: "The query string or body is malformed (the detail says which part).",
    401: "No valid API token (or cookie session) was sent.",
    403: "The token's role may not do this (the detail names the role needed).",
    429: "Too many refused tokens from this address; see Retry-After.",
    503: "Proxmox or Proxboard's database cannot be reached right now.",
}
DESCRIPTION = """Proxboard's containers, their actions and templates, for scripts.

Authenticate with a personal API token (My account → API tokens): `Authorization: Bearer pxb_…`. A token acts
with its role (viewer, operator, admin), never above its owner's. Errors are `application/problem+json`
(RFC 9457); a body that does not validate lists each field's messages in `errors`. Lists take `page` and
`per_page`, send `Link` headers and an `ETag` (send it back in `If-None-Match` for a 304)."""


@dataclass(frozen=True)
class Doc:
    """What a view takes and answers: ``responses`` maps a status to its model (None: no body)."""

    summary: str
    tag: str
    responses: dict[int, type[BaseModel] | object | None]
    query: type[BaseModel] | None = None
    body: type[BaseModel] | object | None = None
    body_description: str = ""
    problems: dict[int, str] = field(default_factory=dict)
    list_etag: bool = False


def documented(summary: str, *, tag: str, responses: dict, query=None, body=None, body_description: str = "",
               problems: dict[int, str] | None = None, list_etag: bool = False) -> Callable:
    """Attach a ``Doc`` to a view (for ``build``); the view itself is unchanged."""

    def attach(view):
        view.api_doc = Doc(summary, tag, responses, query, body, body_description, problems or {}, list_etag)
        return view

    return attach


def _path(rule) -> tuple[str, list[dict]]:
    """The OpenAPI path of a werkzeug rule and its path parameters."""
    parameters = []
    for name, converter in rule._converters.items():
        if isinstance(converter, IntegerConverter):
            schema = {"type": "integer", "minimum": converter.min or 0, "maximum": converter.max}
        elif isinstance(converter, AnyConverter):
            schema = {"type": "string", "enum": sorted(converter.items)}
        else:
            schema = {"type": "string", "pattern": "^[^/]+$"}
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule), parameters


def _query_parameters(model: type[BaseModel] | None) -> list[dict]:
    if model is None:
        return []
    schema = model.model_json_schema(ref_template=REF)
    return [{"name": name, "in": "query", "required": False, "description": prop.pop("description", ""),
             "schema": {key: value for key, value in prop.items() if key != "title"}}
            for name, prop in schema["properties"].items()]


def _content(model, media: str = "application/json") -> dict:
    if model is schemas.Manifest:
        return {media: {"schema": {"type": "object", "description": "A template file (proxboard-template/1)."}}}
    return {media: {"schema": {"$ref": REF.format(model=model.__name__)}}}


def _operation(doc: Doc, path_parameters: list[dict]) -> dict:
    responses: dict[str, dict] = {}
    for status, model in doc.responses.items():
        entry = {"description": "OK" if status < 300 else str(status)}
        if status == 202:
            entry["description"] = "Accepted: poll the operation at Location."
            entry["headers"] = {"Location": {"schema": {"type": "string"}, "description": "The operation's URL."}}
        if model is not None:
            entry["content"] = _content(model)
        if doc.list_etag and status == 200:
            entry["headers"] = {"ETag": {"schema": {"type": "string"}},
                                "Link": {"schema": {"type": "string"}, "description": "first, prev, next, last"}}
        responses[str(status)] = entry
    if doc.list_etag:
        responses["304"] = {"description": "Not Modified: the ETag sent in If-None-Match still holds."}
    problems = {**COMMON_PROBLEMS, **doc.problems}
    if doc.body is not None:
        problems.setdefault(413, "The body is larger than the server accepts (MAX_CONTENT_LENGTH, 2 MiB).")
    if path_parameters:
        problems.setdefault(404, "There is no such resource.")
    for status, text in sorted(problems.items()):
        responses[str(status)] = {"description": text, "content": _content(schemas.Problem, PROBLEM)}
    operation = {"summary": doc.summary, "tags": [doc.tag], "responses": responses,
                 "parameters": path_parameters + _query_parameters(doc.query)}
    if doc.list_etag:
        operation["parameters"].append({"name": "If-None-Match", "in": "header", "required": False,
                                        "schema": {"type": "string"}})
    if doc.body is not None:
        operation["requestBody"] = {"required": True, "description": doc.body_description,
                                    "content": _content(doc.body)}
    return operation


def _models(docs: list[Doc]) -> list[tuple[type[BaseModel], str]]:
    """Every model the documents name, with the JSON Schema mode it is read in (answers: serialization)."""
    found: dict[str, tuple[type[BaseModel], str]] = {"Problem": (schemas.Problem, "serialization")}
    for doc in docs:
        for model, mode in [*((m, "serialization") for m in doc.responses.values()), (doc.body, "validation")]:
            if isinstance(model, type) and issubclass(model, BaseModel):
                found[model.__name__] = (model, mode)
    return list(found.values())


def build(app: Flask) -> dict:
    """The OpenAPI 3.1 document of every documented ``api.`` endpoint of ``app``."""
    spec = APISpec(title=TITLE, version=VERSION, openapi_version="3.1.0", info={"description": DESCRIPTION},
                   security=[{"token": []}], servers=[{"url": "/"}])
    spec.components.security_scheme("token", {"type": "http", "scheme": "bearer",
                                              "description": "A personal API token, pxb_…"})
    paths: dict[str, tuple[list[dict], dict]] = {}
    docs = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        doc = getattr(app.view_functions.get(rule.endpoint), "api_doc", None)
        if not rule.endpoint.startswith("api.") or doc is None:
            continue
        docs.append(doc)
        path, parameters = _path(rule)
        operations = paths.setdefault(path, (parameters, {}))[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            operations[method.lower()] = _operation(doc, parameters)
    _, definitions = models_json_schema(_models(docs), ref_template=REF)
    for name, schema in sorted(definitions.get("$defs", {}).items()):
        spec.components.schema(name, schema)
    for path, (_parameters, operations) in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()
