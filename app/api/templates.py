"""``/api/v1/templates``: the template list, a template's export (the file the Export button downloads) and
importing one (what the Import button does, through the same importer)."""
from __future__ import annotations

from flask import current_app, request, url_for
from werkzeug.exceptions import NotFound, UnsupportedMediaType

from app import problems
from app.api import bp, schemas
from app.api.common import answer, list_answer, page_info, refuse_control_characters
from app.api.forms import TemplateListQuery
from app.api.spec import documented
from app.container_templates import manifest
from app.container_templates.services import find_template, get_template, list_templates, package_total
from app.models import ContainerTemplate
from app.pagination import paginate

IMPORT_SOURCE = "the request body"


def template_model(template: ContainerTemplate) -> schemas.Template:
    """A template as the API lists it."""
    return schemas.Template(
        id=template.id, name=template.name, description=template.description or "", ostemplate=template.ostemplate,
        cores=template.cores, memory=template.memory, swap=template.swap, disk=template.disk,
        storage=template.storage, bridge=template.bridge, unprivileged=template.unprivileged,
        nesting=template.nesting, keyctl=template.keyctl, fuse=template.fuse, tags=list(template.tag_list),
        scripts=len(template.scripts), files=len(template.files), packages=package_total(template),
        export_url=url_for("api.template_export", template_id=template.id))


@bp.get("/templates")
@documented("List container templates", tag="templates", query=schemas.TemplateQuery,
            responses={200: schemas.TemplateList}, list_etag=True)
def templates():
    """The template grid's list: ``search`` and ``tags`` as there, by name, paged."""
    form = TemplateListQuery()
    if not form.validate():
        return problems.problem(400, "The query string is not valid.", errors=form.errors)
    search = form.search.data or ""
    found = list_templates(search, form.selected_tags)
    page = paginate(found, form.page_number, form.page_size)
    body = schemas.TemplateList(items=[template_model(t) for t in page.items],
                                page=page_info(page, form.page_size, len(found)))
    return list_answer(body, body.page, "api.templates", {"search": search, "tags": form.tags.data})


@bp.get("/templates/<int:template_id>/export")
@documented("A template as one JSON file (format proxboard-template/1), as the Export button downloads it",
            tag="templates", responses={200: schemas.Manifest})
def template_export(template_id: int):
    """The template's single-file form (``manifest.export_json``)."""
    template = get_template(template_id)
    if template is None:
        raise NotFound(f"There is no template {template_id}.")
    response = current_app.response_class(manifest.export_json(manifest.spec_from_template(template)),
                                          mimetype="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="{manifest.slugify(template.name)}.json"'
    return response


@bp.post("/templates/import")
@documented("Import a template file (a template of the same name is updated)", tag="templates",
            body=schemas.Manifest, responses={200: schemas.ImportResult, 201: schemas.ImportResult},
            body_description="A template file, as exported.",
            problems={415: "The body is not JSON.", 422: "The file is not a valid template (the detail says where)."})
def template_import():
    """Read the body with the importer of the Import button (``manifest.read_text`` then ``apply_specs``)."""
    if not request.is_json:
        raise UnsupportedMediaType("Send the template file as JSON (Content-Type: application/json).")
    try:
        data = manifest.parse_json(request.get_data(as_text=True), IMPORT_SOURCE)
        refuse_control_characters(data)
        spec = manifest.spec_from_manifest(data, IMPORT_SOURCE)
        result = manifest.apply_specs([spec])
    except manifest.ManifestError as error:
        return problems.problem(422, f"Import failed: {error}")
    created = spec.name in result.created
    body = schemas.ImportResult(template=template_model(get_template(find_template(spec.name).id)), created=created,
                                summary=result.summary())
    return answer(body, 201 if created else 200, {"Location": body.template.export_url})
