"""``/templates``: the template grid with its search and tag filters."""
from __future__ import annotations

from flask import current_app, render_template

from app.container_templates import bp, forms, services
from app.container_templates.common import page
from app.htmx import is_htmx, target


@bp.get("/")
@bp.get("")
def index():
    """The template grid with search and tag filters; htmx gets just the grid."""
    query = forms.GridQuery()
    search = query.search.data or ""
    selected = query.selected_tags
    templates = services.list_templates(search, selected)
    context = {"templates": templates, "search": search, "selected_tags": selected,
               "total": services.template_count()}
    if target() == "template-grid":
        return page(render_template("container_templates/_grid.html", **context))
    return page(render_template(
        "container_templates/index.html", all_tags=services.all_tags(), import_form=forms.ImportForm(formdata=None),
        action_form=forms.ActionForm(formdata=None), templates_dir=current_app.config.get("TEMPLATES_DIR"), **context,
    ))


