"""``/templates/import`` and ``/templates/discover``: templates from an upload or the templates folder."""
from __future__ import annotations

from flask import current_app, flash, redirect, url_for

from app.container_templates import bp, forms, manifest, services
from app.container_templates.common import checked_action


@bp.post("/import")
def import_file():
    """Import an uploaded single-file template (a template with the same name is updated)."""
    form = forms.ImportForm()
    if not form.validate_on_submit():
        for errors in form.errors.values():
            flash(errors[0], "error")
        return redirect(url_for(".index"))
    upload = form.file.data
    source = upload.filename or "upload"
    try:
        spec = manifest.read_text(upload.read().decode("utf-8"), source)
        result = manifest.apply_specs([spec])
    except UnicodeDecodeError:
        flash(f"{source}: not UTF-8 text.", "error")
    except manifest.ManifestError as error:
        flash(f"Import failed: {error}", "error")
    else:
        flash(f"Imported “{spec.name}” ({result.summary()}).", "success")
        template = services.find_template(spec.name)
        return redirect(url_for(".detail", template_id=template.id))
    return redirect(url_for(".index"))


@bp.post("/discover")
def discover():
    """Import every template in the configured templates folder, updating those with the same name."""
    checked_action()
    folder = current_app.config.get("TEMPLATES_DIR")
    if not folder:
        flash("No templates folder is configured (set PROXBOARD_TEMPLATES_DIR).", "warning")
        return redirect(url_for(".index"))
    try:
        result = manifest.apply_specs(manifest.read_path(folder))
    except manifest.ManifestError as error:
        flash(f"Nothing imported: {error}", "error")
    else:
        flash(f"Discovered templates in {folder}: {result.summary()}.", "success")
    return redirect(url_for(".index"))


