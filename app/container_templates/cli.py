"""``flask templates import|export|seed``: templates as files, and the starter catalog."""
from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from app.container_templates import manifest, services

templates_cli = AppGroup("templates", help="Import, export and seed container templates.")


def catalog_dir() -> Path:
    """The starter catalog shipped with Proxboard (``catalog/`` at the repository root)."""
    configured = current_app.config.get("CATALOG_DIR")
    return Path(configured) if configured else Path(current_app.root_path).parent / "catalog"


@templates_cli.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--skip-existing", is_flag=True, help="Leave templates whose name already exists alone.")
def import_command(path: Path, skip_existing: bool) -> None:
    """Import the template(s) at PATH: a .json file, a template folder, or a folder of them."""
    try:
        specs = manifest.read_path(path)
        result = manifest.apply_specs(specs, existing="skip" if skip_existing else "update")
    except manifest.ManifestError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Imported {path}: {result.summary()}.")


@templates_cli.command("export")
@click.argument("name")
@click.argument("target", type=click.Path(path_type=Path))
def export_command(name: str, target: Path) -> None:
    """Export template NAME to TARGET: a folder, or a single file when TARGET ends in .json."""
    template = services.find_template(name)
    if template is None:
        raise click.ClickException(f"No template called “{name}”.")
    spec = manifest.spec_from_template(services.get_template(template.id))
    try:
        if target.suffix == ".json":
            if target.exists():
                raise manifest.ManifestError(f"{target}: already exists")
            target.write_bytes(manifest.export_json(spec).encode("utf-8"))
        else:
            manifest.write_folder(spec, target)
    except manifest.ManifestError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Exported “{name}” to {target}.")


@templates_cli.command("seed")
@click.option("--if-empty", is_flag=True, help="Only when there is no template at all (first start).")
def seed_command(if_empty: bool) -> None:
    """Load the starter catalog; templates that already exist (by name) are left as they are."""
    if if_empty and services.template_count():
        click.echo("Templates exist already: starter catalog not loaded.")
        return
    try:
        result = manifest.apply_specs(manifest.read_path(catalog_dir()), existing="skip")
    except manifest.ManifestError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Starter catalog: {result.summary()}.")
