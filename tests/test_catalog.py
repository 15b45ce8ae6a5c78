"""The starter catalog: valid, round-trips byte-for-byte, loads on SQLite and PostgreSQL, seeds idempotently."""
from __future__ import annotations

import subprocess
from pathlib import Path

from flask_migrate import upgrade

from app import create_app
from app.container_templates import manifest, script_with_helpers, services
from app.extensions import db as _db

CATALOG = Path(__file__).resolve().parent.parent / "catalog"
EXPECTED = {"Debian 12", "Ubuntu 24.04", "nginx web server", "PostgreSQL database", "AdGuard Home",
            "Jellyfin media server", "code-server IDE"}


def test_catalog_folders_round_trip_byte_for_byte(tmp_path):
    for folder in sorted(p for p in CATALOG.iterdir() if p.is_dir()):
        spec = manifest.read_folder(folder)
        written = manifest.folder_contents(spec)
        on_disk = {p.relative_to(folder).as_posix(): p.read_bytes().decode() for p in folder.rglob("*") if p.is_file()}
        assert written == on_disk, folder.name


def test_every_catalog_script_is_valid_bash_with_the_helpers(tmp_path):
    for spec in manifest.read_path(CATALOG):
        for script in spec.scripts:
            result = subprocess.run(["bash", "-n"], input=script_with_helpers(script["content"]), text=True,
                                    capture_output=True)
            assert result.returncode == 0, f"{spec.name} / {script['name']}: {result.stderr}"


def test_service_templates_declare_services_and_credentials():
    specs = {spec.name: spec for spec in manifest.read_path(CATALOG)}
    assert set(specs) == EXPECTED
    for name in EXPECTED - {"Debian 12", "Ubuntu 24.04"}:
        assert specs[name].services, name
        assert all(s["unit"] and s["port"] for s in specs[name].services), name
    credentials = {name: [m for s in spec.scripts for m in services.CREDENTIAL_RE.findall(s["content"])]
                   for name, spec in specs.items()}
    assert ("postgresql", "PASSWORD") in credentials["PostgreSQL database"]
    assert ("adguardhome", "PASSWORD") in credentials["AdGuard Home"]
    assert ("code-server", "PASSWORD") in credentials["code-server IDE"]


def test_seed_loads_the_catalog_on_both_databases_and_is_idempotent(any_database_url):
    app = create_app({"SQLALCHEMY_DATABASE_URI": any_database_url, "TESTING": True, "SECRET_KEY": "test"})
    with app.app_context():
        upgrade()
        runner = app.test_cli_runner()
        first = runner.invoke(args=["templates", "seed"])
        assert first.exit_code == 0, first.output
        assert "7 created" in first.output
        services.update_template(services.find_template("Debian 12"), {"cores": 3})
        second = runner.invoke(args=["templates", "seed"])
        assert "7 unchanged" in second.output
        assert services.template_count() == 7 and services.find_template("Debian 12").cores == 3
        services.delete_template(services.find_template("Debian 12"))
        assert "Templates exist already" in runner.invoke(args=["templates", "seed", "--if-empty"]).output
        assert services.find_template("Debian 12") is None
        buckets = services.list_buckets()
        assert [b.name for b in buckets] == ["essentials"] and len(buckets[0].packages) == 6
        postgres = services.get_template(services.find_template("PostgreSQL database").id)
        assert [s.name for s in postgres.scripts] == ["update", "install postgresql", "admin role"]
        _db.session.remove()
        _db.engine.dispose()


def test_catalog_files_keep_their_policy():
    spec = manifest.read_folder(CATALOG / "nginx")
    assert {(f["name"], f["policy"]) for f in spec.files} == {("proxboard", "backup"), ("index.html", "default")}
