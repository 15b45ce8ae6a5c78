"""``/templates/new`` and ``/templates/<id>/…``: create, the detail tabs, the edit page and its sub-forms, duplicate, delete, export."""
from __future__ import annotations

from flask import flash, make_response, redirect, render_template, request, url_for

from app.container_templates import bp, forms, manifest, services
from app.container_templates.common import (
    bucket_or_404, checked_action, child_or_404, invalid_page, page, template_or_404,
)
from app.extensions import db
from app.htmx import is_htmx
from app.models import ContainerTemplate, TemplateFile, TemplatePackage, TemplateScript, TemplateService
from app.proxmox import get_proxmox

TABS = ("config", "scripts", "packages", "files")


def _cluster_options() -> dict:
    return services.cluster_options(get_proxmox())


@bp.route("/new", methods=["GET", "POST"])
def create():
    """A new template's config; scripts, files and packages are added on the edit page next."""
    options = _cluster_options()
    form = forms.TemplateForm(ostemplate_choices=options["ostemplates"])
    if form.validate_on_submit():
        try:
            template = services.create_template(form.config())
        except services.TemplateError as error:
            form[error.field].errors.append(error.message)
        else:
            flash(f"Template “{template.name}” created. Add its scripts, files and packages below.", "success")
            return redirect(url_for(".edit", template_id=template.id))
    html = render_template("container_templates/form.html", form=form, template=None, options=options)
    return invalid_page(html) if form.errors else page(html)


@bp.get("/<int:template_id>")
@bp.get("/<int:template_id>/<any(scripts, packages, files):tab>")
def detail(template_id: int, tab: str = "config"):
    """A template, one tab per URL: config, scripts, packages or files."""
    template = template_or_404(template_id)
    return page(render_template(
        "container_templates/detail.html", template=template, tab=tab,
        packages=services.packages_by_manager(template), package_total=services.package_total(template),
        credentials=services.declared_credentials(template), action_form=forms.ActionForm(formdata=None),
    ))


def _edit_forms(template: ContainerTemplate, overrides: dict, options: dict) -> dict:
    """Every form of the edit page, prefilled; ``overrides`` holds the posted one, with its errors."""

    def pick(key, factory):
        return overrides.get(key) or factory()

    attach = pick("attach", lambda: forms.AttachBucketForm(formdata=None))
    attached = {bucket.id for bucket in template.buckets}
    attach.bucket_id.choices = [forms.SelectChoice(b.id, f"{b.name} ({len(b.packages)})")
                                for b in services.list_buckets() if b.id not in attached]
    def config_form():
        form = forms.TemplateForm(formdata=None, obj=template, ostemplate_choices=options["ostemplates"])
        form.tags.data = ", ".join(template.tag_list)
        return form

    return {
        "config": pick("config", config_form),
        "scripts": {s.id: pick(f"script-{s.id}", lambda s=s: forms.ScriptForm(formdata=None, obj=s, prefix=f"script-{s.id}"))
                    for s in template.scripts},
        "new_script": pick("new_script", lambda: forms.ScriptForm(formdata=None, prefix="new-script")),
        "files": {f.id: pick(f"file-{f.id}", lambda f=f: forms.FileForm(formdata=None, obj=f, prefix=f"file-{f.id}"))
                  for f in template.files},
        "new_file": pick("new_file", lambda: forms.FileForm(formdata=None, prefix="new-file")),
        "new_package": pick("new_package", lambda: forms.PackageForm(formdata=None, prefix="new-package")),
        "services": {sv.id: pick(f"service-{sv.id}", lambda sv=sv: forms.ServiceForm(formdata=None, obj=sv, prefix=f"service-{sv.id}"))
                     for sv in template.services},
        "new_service": pick("new_service", lambda: forms.ServiceForm(formdata=None, prefix="new-service")),
        "attach": attach,
        "action": forms.ActionForm(formdata=None),
    }


def _render_edit(template: ContainerTemplate, invalid: bool = False, **overrides):
    options = _cluster_options() if "config" in overrides or not is_htmx() else services.NO_OPTIONS
    html = render_template("container_templates/edit.html", template=template, options=options,
                           forms=_edit_forms(template, overrides, options))
    return invalid_page(html) if invalid else page(html)


def _back_to_edit(template: ContainerTemplate, section: str):
    return redirect(url_for(".edit", template_id=template.id, _anchor=f"section-{section}"))


@bp.route("/<int:template_id>/edit", methods=["GET", "POST"])
def edit(template_id: int):
    """The edit page: config form on top, then one small form per script, file, package and service."""
    template = template_or_404(template_id)
    if request.method == "GET":
        return _render_edit(template)
    options = _cluster_options()
    choices = options["ostemplates"] + ([template.ostemplate] if template.ostemplate else [])
    form = forms.TemplateForm(ostemplate_choices=choices if options["ostemplates"] else [])
    if form.validate_on_submit():
        try:
            services.update_template(template, form.config())
        except services.TemplateError as error:
            form[error.field].errors.append(error.message)
        else:
            flash(f"Template “{template.name}” saved.", "success")
            return _back_to_edit(template, "config")
    db.session.rollback()
    return _render_edit(template, invalid=True, config=form)


@bp.post("/<int:template_id>/scripts/add")
def add_script(template_id: int):
    """Append a script to the run order."""
    template = template_or_404(template_id)
    form = forms.ScriptForm(prefix="new-script")
    if not form.validate_on_submit():
        return _render_edit(template, invalid=True, new_script=form)
    try:
        services.add_script(template, form.name.data, form.content.data, form.enabled.data)
    except services.TemplateError as error:
        form.name.errors.append(error.message)
        return _render_edit(template, invalid=True, new_script=form)
    flash(f"Script “{form.name.data}” added.", "success")
    return _back_to_edit(template, "scripts")


@bp.post("/<int:template_id>/scripts/<int:script_id>")
def update_script(template_id: int, script_id: int):
    """Save a script's name, content and enabled flag."""
    template = template_or_404(template_id)
    script = child_or_404(template, TemplateScript, script_id)
    form = forms.ScriptForm(prefix=f"script-{script.id}")
    if not form.validate_on_submit():
        return _render_edit(template, invalid=True, **{f"script-{script.id}": form})
    services.update_script(script, form.name.data, form.content.data, form.enabled.data)
    flash(f"Script “{script.name}” saved.", "success")
    return _back_to_edit(template, "scripts")


@bp.post("/<int:template_id>/scripts/<int:script_id>/<any(up, down, toggle, delete):action>")
def script_action(template_id: int, script_id: int, action: str):
    """Move a script up or down, enable/disable it, or remove it."""
    template = template_or_404(template_id)
    script = child_or_404(template, TemplateScript, script_id)
    checked_action()
    if action == "delete":
        services.delete_script(script)
        flash(f"Script “{script.name}” removed.", "success")
    elif action == "toggle":
        services.toggle_script(script)
        flash(f"Script “{script.name}” {'enabled' if script.enabled else 'disabled'}.", "success")
    else:
        services.move_script(script, -1 if action == "up" else 1)
    return _back_to_edit(template, "scripts")


@bp.post("/<int:template_id>/files/add")
@bp.post("/<int:template_id>/files/<int:file_id>")
def save_file(template_id: int, file_id: int | None = None):
    """Add a file, or save an existing one."""
    template = template_or_404(template_id)
    file = child_or_404(template, TemplateFile, file_id) if file_id else None
    key = f"file-{file.id}" if file else "new_file"
    form = forms.FileForm(prefix=f"file-{file.id}" if file else "new-file")
    if form.validate_on_submit():
        try:
            services.save_file(template, form.data, file)
        except services.TemplateError as error:
            db.session.rollback()
            form[error.field].errors.append(error.message)
        else:
            flash(f"File “{form.name.data}” saved.", "success")
            return _back_to_edit(template, "files")
    return _render_edit(template, invalid=True, **{key: form})


@bp.post("/<int:template_id>/packages/add")
def add_package(template_id: int):
    """Add a package installed directly by the template."""
    template = template_or_404(template_id)
    form = forms.PackageForm(prefix="new-package")
    if form.validate_on_submit():
        try:
            services.add_package(template, form.manager.data, form.name.data, form.version.data)
        except services.TemplateError as error:
            db.session.rollback()
            form.name.errors.append(error.message)
        else:
            flash(f"{form.manager.data} package “{form.name.data}” added.", "success")
            return _back_to_edit(template, "packages")
    return _render_edit(template, invalid=True, new_package=form)


@bp.post("/<int:template_id>/buckets/attach")
def attach_bucket(template_id: int):
    """Install a bucket's packages with this template."""
    template = template_or_404(template_id)
    form = forms.AttachBucketForm()
    form.bucket_id.choices = [forms.SelectChoice(b.id, b.name) for b in services.list_buckets()]
    if not form.validate_on_submit():
        return _render_edit(template, invalid=True, attach=form)
    bucket = bucket_or_404(form.bucket_id.data)
    services.attach_bucket(template, bucket)
    flash(f"Bucket “{bucket.name}” attached.", "success")
    return _back_to_edit(template, "packages")


@bp.post("/<int:template_id>/buckets/<int:bucket_id>/detach")
def detach_bucket(template_id: int, bucket_id: int):
    """Stop installing a bucket's packages with this template."""
    template = template_or_404(template_id)
    bucket = bucket_or_404(bucket_id)
    checked_action()
    services.detach_bucket(template, bucket)
    flash(f"Bucket “{bucket.name}” detached.", "success")
    return _back_to_edit(template, "packages")


@bp.post("/<int:template_id>/services/add")
@bp.post("/<int:template_id>/services/<int:service_id>")
def save_service(template_id: int, service_id: int | None = None):
    """Declare a service the template's containers provide, or change one."""
    template = template_or_404(template_id)
    service = child_or_404(template, TemplateService, service_id) if service_id else None
    key = f"service-{service.id}" if service else "new_service"
    form = forms.ServiceForm(prefix=f"service-{service.id}" if service else "new-service")
    if not form.validate_on_submit():
        return _render_edit(template, invalid=True, **{key: form})
    try:
        services.save_service(template, form.data, service)
    except services.TemplateError as error:
        form.name.errors.append(error.message)
        return _render_edit(template, invalid=True, **{key: form})
    flash(f"Service “{form.name.data}” {'saved' if service else 'added'}.", "success")
    return _back_to_edit(template, "services")


@bp.post("/<int:template_id>/<any(files, packages, services):kind>/<int:item_id>/delete")
def delete_item(template_id: int, kind: str, item_id: int):
    """Remove a file, a package or a service from the template."""
    template = template_or_404(template_id)
    model = {"files": TemplateFile, "packages": TemplatePackage, "services": TemplateService}[kind]
    item = child_or_404(template, model, item_id)
    checked_action()
    services.delete_child(item)
    flash(f"“{item.name}” removed.", "success")
    return _back_to_edit(template, kind)


@bp.post("/<int:template_id>/duplicate")
def duplicate(template_id: int):
    """Copy a template with everything it contains."""
    template = template_or_404(template_id)
    checked_action()
    copy = services.duplicate_template(template)
    flash(f"Template duplicated as “{copy.name}”.", "success")
    return redirect(url_for(".edit", template_id=copy.id))


@bp.route("/<int:template_id>/delete", methods=["GET", "POST"])
def delete(template_id: int):
    """Confirm, then delete a template; containers made from it keep working."""
    template = template_or_404(template_id)
    if request.method == "POST":
        checked_action()
        name = template.name
        services.delete_template(template)
        flash(f"Template “{name}” deleted.", "success")
        return redirect(url_for(".index"))
    return page(render_template("container_templates/delete.html", template=template,
                                 used_by=services.containers_using(template)))


@bp.get("/<int:template_id>/export")
def export(template_id: int):
    """Download the template as one JSON file."""
    template = template_or_404(template_id)
    response = make_response(manifest.export_json(manifest.spec_from_template(template)))
    response.mimetype = "application/json"
    response.headers["Content-Disposition"] = f'attachment; filename="{manifest.slugify(template.name)}.json"'
    return response


