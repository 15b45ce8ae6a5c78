"""Templates as files: single JSON and folder exports, imports from both, the CLI and the upload form."""
from __future__ import annotations

import io
import json

import pytest

from app.container_templates import manifest, services
from app.models import ContainerTemplate, Credential, Container, PackageBucket, TemplateScript

SINGLE = {
    "format": "proxboard-template/1",
    "name": "Gitea",
    "description": "Git hosting",
    "ostemplate": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
    "resources": {"cores": 2, "memory": 1024, "swap": 256, "disk": 12, "storage": "local-lvm", "bridge": "vmbr0"},
    "features": {"unprivileged": True, "nesting": True, "keyctl": False, "fuse": False},
    "tags": ["debian", "git"],
    "services": [{"name": "gitea", "unit": "gitea.service", "port": 3000, "scheme": "http", "web_path": "/"}],
    "buckets": [{"name": "tools", "description": "", "packages": [{"manager": "apt", "name": "git", "version": None}]}],
    "packages": [{"manager": "apt", "name": "sqlite3", "version": None},
                 {"manager": "pip", "name": "requests", "version": "2.32.3"}],
    "files": [{"name": "app.ini", "target_path": "/etc/gitea", "policy": "default", "content": "[server]\nHTTP_PORT = 3000\n"}],
    "scripts": [{"name": "install", "enabled": True, "content": "apt_install git\n"},
                {"name": "optional extras", "enabled": False, "content": "echo later\n"}],
}
SINGLE_TEXT = json.dumps(SINGLE, indent=2, ensure_ascii=False) + "\n"


def import_text(text: str, source="gitea.json"):
    return manifest.apply_specs([manifest.read_text(text, source)])


def export_text(name: str) -> str:
    template = services.get_template(services.find_template(name).id)
    return manifest.export_json(manifest.spec_from_template(template))


def test_single_file_round_trips_byte_for_byte(db):
    import_text(SINGLE_TEXT)
    exported = export_text("Gitea")
    assert exported == SINGLE_TEXT
    import_text(exported)  # importing again updates in place
    assert export_text("Gitea") == SINGLE_TEXT
    assert services.template_count() == 1


def test_folder_round_trips_byte_for_byte(db, tmp_path, runner):
    import_text(SINGLE_TEXT)
    assert runner.invoke(args=["templates", "export", "Gitea", str(tmp_path / "one")]).exit_code == 0
    files = sorted(p.relative_to(tmp_path / "one").as_posix() for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert files == ["files/app.ini", "packages/apt.txt", "packages/pip.txt", "scripts/01-install.sh",
                     "scripts/02-optional-extras.sh", "template.json"]
    assert (tmp_path / "one/packages/pip.txt").read_text() == "requests==2.32.3\n"

    services.delete_template(services.find_template("Gitea"))
    result = runner.invoke(args=["templates", "import", str(tmp_path / "one")])
    assert result.exit_code == 0 and "1 created" in result.output
    assert export_text("Gitea") == SINGLE_TEXT
    runner.invoke(args=["templates", "export", "Gitea", str(tmp_path / "two")])
    for relative in files:
        assert (tmp_path / "two" / relative).read_bytes() == (tmp_path / "one" / relative).read_bytes()


def test_cli_exports_a_single_file_and_refuses_to_overwrite(db, tmp_path, runner):
    import_text(SINGLE_TEXT)
    target = tmp_path / "gitea.json"
    assert runner.invoke(args=["templates", "export", "Gitea", str(target)]).exit_code == 0
    assert target.read_text() == SINGLE_TEXT
    again = runner.invoke(args=["templates", "export", "Gitea", str(target)])
    assert again.exit_code != 0 and "already exists" in again.output
    missing = runner.invoke(args=["templates", "export", "Nope", str(tmp_path / "x")])
    assert "No template called “Nope”." in missing.output


def test_json_syntax_error_names_the_file_and_line(db, tmp_path, runner):
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "format": "proxboard-template/1",\n  "name": "x",,\n}\n')
    result = runner.invoke(args=["templates", "import", str(bad)])
    assert result.exit_code != 0 and f"{bad}, line 3 column" in result.output


@pytest.mark.parametrize(("change", "message"), [
    ({"resources": {"cores": 0}}, "gitea.json: resources.cores: must be at least 1 and at most 8192"),
    ({"resources": {"memory": "lots"}}, "gitea.json: resources.memory: must be a whole number"),
    ({"tags": ["ok", "-Bad"]}, "gitea.json: tags: invalid tag “-bad”"),
    ({"files": [{"name": "../x", "target_path": "/etc"}]}, "gitea.json: files[0].name: must be a plain file name"),
    ({"files": [{"name": "x", "target_path": "/etc", "policy": "merge"}]}, "gitea.json: files[0].policy: must be one of"),
    ({"scripts": [{"content": "true"}]}, "gitea.json: scripts[0].name: is required"),
    ({"packages": [{"manager": "brew", "name": "x"}]}, "gitea.json: packages[0].manager: must be one of apt, pip, npm"),
    ({"format": "other/2"}, "gitea.json: format: must be “proxboard-template/1”"),
])
def test_invalid_manifest_names_the_key_and_writes_nothing(db, change, message):
    data = {**SINGLE, **change}
    with pytest.raises(manifest.ManifestError) as error:
        import_text(json.dumps(data))
    assert message in str(error.value)
    assert services.template_count() == 0


def test_bad_package_list_line_is_reported_and_nothing_partial_is_written(db, tmp_path, runner):
    import_text(SINGLE_TEXT)
    runner.invoke(args=["templates", "export", "Gitea", str(tmp_path / "good" / "gitea")])
    (tmp_path / "good" / "other.json").write_text(SINGLE_TEXT.replace('"Gitea"', '"Other"'))
    broken = tmp_path / "good" / "gitea" / "packages" / "apt.txt"
    broken.write_text("sqlite3\n# fine\nnot a package\n")
    services.delete_template(services.find_template("Gitea"))
    result = runner.invoke(args=["templates", "import", str(tmp_path / "good")])
    assert result.exit_code != 0 and f"{broken}, line 3:" in result.output
    assert services.template_count() == 0


def test_import_updates_an_existing_template_by_name_keeping_its_id(db):
    import_text(SINGLE_TEXT)
    first_id = services.find_template("Gitea").id
    changed = {**SINGLE, "resources": {**SINGLE["resources"], "cores": 6}, "scripts": SINGLE["scripts"][:1]}
    result = import_text(json.dumps(changed))
    assert result.updated == ["Gitea"]
    template = services.get_template(first_id)
    assert template.cores == 6 and [s.name for s in template.scripts] == ["install"]
    assert db.session.scalar(db.select(db.func.count(TemplateScript.id))) == 1
    assert db.session.scalar(db.select(db.func.count(PackageBucket.id))) == 1


def test_exports_carry_no_credentials(logged_in, client, db):
    import_text(SINGLE_TEXT)
    template = services.find_template("Gitea")
    container = Container(vmid=950, node="pve1", template_id=template.id)
    container.credentials = [Credential(key="PASSWORD", value_encrypted=b"s3cret-value")]
    db.session.add(container)
    db.session.commit()
    response = client.get(f"/templates/{template.id}/export")
    assert response.headers["Content-Disposition"] == 'attachment; filename="gitea.json"'
    assert response.text == SINGLE_TEXT and "s3cret" not in response.text


def test_upload_form_imports_and_reports_errors(logged_in, client, db):
    response = logged_in.post("/templates/import", {"file": (io.BytesIO(SINGLE_TEXT.encode()), "gitea.json")},
                              content_type="multipart/form-data", follow_redirects=True)
    assert "Imported “Gitea” (1 created)." in response.text
    assert "data-tab=\"config\"" in response.text
    bad = logged_in.post("/templates/import", {"file": (io.BytesIO(b'{"format": 1}'), "broken.json")},
                         content_type="multipart/form-data", follow_redirects=True)
    assert "Import failed: broken.json: format: must be" in bad.text


def test_discover_imports_the_configured_folder_updating_by_name(logged_in, client, db, app, tmp_path):
    import_text(SINGLE_TEXT)
    (tmp_path / "a.json").write_text(SINGLE_TEXT.replace('"cores": 2', '"cores": 3'))
    (tmp_path / "b.json").write_text(SINGLE_TEXT.replace('"Gitea"', '"Forgejo"'))
    assert "Discover" not in client.get("/templates").text
    app.config["TEMPLATES_DIR"] = str(tmp_path)
    assert "Discover" in client.get("/templates").text
    response = logged_in.post("/templates/discover", follow_redirects=True)
    assert "1 created, 1 updated" in response.text
    assert services.find_template("Gitea").cores == 3 and services.find_template("Forgejo") is not None


@pytest.mark.parametrize(("packages", "message"), [
    ([{"manager": "apt", "name": "curl"}] * 3 + [{"manager": "pip", "name": "a/../../x"}],
     "gitea.json: packages[3].name: “a/../../x” is a path or URL"),
    ([{"manager": "npm", "name": "owner/repo"}], "packages[0].name: “owner/repo” is not an npm package name"),
    ([{"manager": "pip", "name": "x @ https://evil.example/x.whl"}], "packages[0].name: “x @ https://evil.example"),
    ([{"manager": "npm", "name": "git+https://github.com/a/b.git"}], "packages[0].name: “git+https://github.com"),
    ([{"manager": "apt", "name": "Curl"}], "packages[0].name: “Curl” is not a Debian package name"),
    ([{"manager": "pip", "name": "requests", "version": "latest!"}], "packages[0].version: “latest!” is not a PEP 440"),
    ([{"manager": "apt", "name": "curl"}] * 501, "gitea.json: packages: lists 501 packages; a template holds at most 500"),
])
def test_package_names_follow_their_manager_and_errors_name_the_entry(db, packages, message):
    with pytest.raises(manifest.ManifestError) as error:
        import_text(json.dumps({**SINGLE, "packages": packages}))
    assert message in str(error.value)
    assert services.template_count() == 0


def test_registry_package_names_of_each_manager_are_accepted(db):
    packages = [{"manager": "apt", "name": "libc6:amd64", "version": "2.36-9+deb12u4"},
                {"manager": "apt", "name": "g++", "version": None},
                {"manager": "pip", "name": "requests[socks]", "version": "2.32.*"},
                {"manager": "pip", "name": "Django>=5,<6", "version": None},
                {"manager": "npm", "name": "@vue/cli", "version": "5.0.8"}]
    import_text(json.dumps({**SINGLE, "packages": packages}))
    stored = services.find_template("Gitea").packages
    assert sorted((p.manager, p.name, p.version) for p in stored) == sorted(
        (p["manager"], p["name"], p["version"]) for p in packages)


@pytest.mark.parametrize(("target", "message"), [
    ("/../../x", "files[0].target_path: “/../../x” contains “..”"),
    ("/etc/nginx/../../../x", "files[0].target_path: “/etc/nginx/../../../x” contains “..”"),
    ("etc/nginx", "files[0].target_path: use an absolute path"),
    ("/etc\nrm -rf /", "files[0].target_path: a path cannot contain NUL, line breaks"),
    ("//host/share", "files[0].target_path: “//host/share” starts with //"),
])
def test_file_targets_that_could_leave_the_container_are_refused(db, target, message):
    with pytest.raises(manifest.ManifestError) as error:
        import_text(json.dumps({**SINGLE, "files": [{"name": "x.conf", "target_path": target, "content": ""}]}))
    assert message in str(error.value)
    assert services.template_count() == 0


def test_file_targets_are_stored_normalised(db):
    import_text(json.dumps({**SINGLE, "files": [{"name": "x.conf", "target_path": "/etc//nginx/./conf.d/",
                                                 "content": ""}]}))
    assert [f.destination for f in services.find_template("Gitea").files] == ["/etc/nginx/conf.d/x.conf"]


def test_text_longer_than_its_column_is_a_located_error(db):
    with pytest.raises(manifest.ManifestError) as error:
        import_text(json.dumps({**SINGLE, "services": [{"name": "s" * 101}]}))
    assert "gitea.json: services[0].name: is longer than 100 characters" in str(error.value)
