"""Templates pages: grid, search and tags, detail tabs, create/edit with validation, duplicate, delete."""
from __future__ import annotations

import pytest

from app.container_templates import services
from app.models import Container, ContainerTemplate, TemplatePackage, TemplateScript


def make_template(db, name="web", **values) -> ContainerTemplate:
    template = ContainerTemplate(name=name, description=values.pop("description", f"{name} server"),
                                 tags=values.pop("tags", ""), **values)
    db.session.add(template)
    db.session.commit()
    return template


def test_grid_lists_templates_with_their_counts(logged_in, client, db):
    template = make_template(db, "nginx", tags="debian;web", cores=2, memory=1024, disk=10)
    template.scripts = [TemplateScript(name="install", content="apt_install nginx", position=0)]
    template.packages = [TemplatePackage(manager="apt", name="curl"), TemplatePackage(manager="pip", name="httpie")]
    db.session.commit()
    page = client.get("/templates").text
    assert "nginx" in page and "2 cores" in page and "1024 MiB" in page and "10 GiB" in page
    assert "1 script" in page and "0 files" in page and "2 packages" in page


def test_empty_state_then_no_results_message(logged_in, client, db):
    assert "No templates yet" in client.get("/templates").text
    make_template(db, "nginx")
    page = client.get("/templates?search=postgres").text
    assert "No templates match “postgres”" in page and "No templates yet" not in page


def test_search_works_without_js_and_htmx_gets_only_the_grid(logged_in, client, db):
    make_template(db, "nginx", description="Web server")
    make_template(db, "postgres", description="Database")
    page = client.get("/templates?search=WEB")
    assert 'data-template="nginx"' in page.text and 'data-template="postgres"' not in page.text
    assert "<html" in page.text and "HX-Request" in page.vary

    fragment = client.get("/templates?search=data", headers={"HX-Request": "true", "HX-Target": "template-grid"})
    assert fragment.text.lstrip().startswith('<div id="template-grid">') and "<html" not in fragment.text
    assert 'data-template="postgres"' in fragment.text and 'data-template="nginx"' not in fragment.text
    assert "HX-Request" in fragment.vary


def test_tag_filters_need_every_tag_and_a_selected_tag_link_deselects_it(logged_in, client, db):
    make_template(db, "nginx", tags="debian;web")
    make_template(db, "caddy", tags="alpine;web")
    make_template(db, "db", tags="debian")
    page = client.get("/templates?tags=web,debian").text
    assert 'data-template="nginx"' in page
    assert 'data-template="caddy"' not in page and 'data-template="db"' not in page
    assert tag_link(page, "debian") == ("/templates?tags=web", "true")  # clicking a selected tag deselects it
    assert tag_link(page, "alpine") == ("/templates?tags=alpine,debian,web", "false")
    assert 'data-template="nginx"' in client.get(tag_link(page, "debian")[0]).text


def tag_link(page: str, tag: str) -> tuple[str, str]:
    """The href and pressed state of the filter link for ``tag``."""
    import re

    match = re.search(rf'href="([^"]*)"\s+aria-pressed="(\w+)" data-filter-tag="{tag}"', page)
    return match.group(1).replace("&amp;", "&"), match.group(2)


def full_template(db) -> ContainerTemplate:
    from app.models import PackageBucket, TemplateFile, TemplateService

    template = make_template(db, "jellyfin", tags="media", cores=4, memory=4096, disk=32, nesting=True)
    template.scripts = [
        TemplateScript(name="repo", content="echo repo", position=1),
        TemplateScript(name="prepare", content="echo prepare", position=0),
        TemplateScript(name="install", content="save_credential jellyfin PASSWORD \"$p\"", position=2),
    ]
    template.files = [TemplateFile(name="jellyfin.conf", target_path="/etc/jellyfin", policy="backup", content="x=1")]
    template.packages = [TemplatePackage(manager="apt", name="curl"), TemplatePackage(manager="npm", name="pm2")]
    template.services = [TemplateService(name="jellyfin", unit="jellyfin.service", port=8096, web_path="/web")]
    template.buckets = [PackageBucket(name="tools", packages=[TemplatePackage(manager="pip", name="httpie")])]
    db.session.commit()
    return template


def test_detail_tabs_have_their_own_urls_and_counts(logged_in, client, db):
    template = full_template(db)
    config = client.get(f"/templates/{template.id}").text
    assert 'data-feature="nesting" data-enabled="yes"' in config and 'data-feature="fuse" data-enabled="no"' in config
    assert 'data-service="jellyfin"' in config and ":8096/web" in config
    assert "<code>PASSWORD</code> for jellyfin" in config
    for tab, count in (("scripts", 3), ("packages", 3), ("files", 1)):
        assert f'data-tab="{tab}">\n      {tab.capitalize()} <span class="badge rounded-pill text-bg-secondary">{count}</span>' in config

    scripts = client.get(f"/templates/{template.id}/scripts").text
    assert scripts.index('data-script="prepare"') < scripts.index('data-script="repo"') < scripts.index('data-script="install"')
    packages = client.get(f"/templates/{template.id}/packages").text
    for manager in ("apt", "pip", "npm"):
        assert f'data-manager="{manager}"' in packages
    assert 'title="From bucket tools"' in packages
    files = client.get(f"/templates/{template.id}/files").text
    assert "/etc/jellyfin/jellyfin.conf" in files and 'data-policy="backup"' in files
    assert client.get(f"/templates/{template.id}/nope").status_code == 404


def config_data(**values) -> dict:
    data = {"name": "web", "description": "", "ostemplate": "", "cores": "2", "memory": "1024", "swap": "512",
            "disk": "8", "storage": "", "bridge": "", "unprivileged": "y", "tags": "Web, debian;WEB"}
    data.update(values)
    return data


def test_create_offers_cluster_os_templates_and_normalises_tags(logged_in, client, db):
    page = client.get("/templates/new").text
    assert '<option value="local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"' in page
    response = logged_in.post("/templates/new", config_data(ostemplate="local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"))
    assert response.status_code == 302 and response.location.endswith("/edit")
    template = services.find_template("web")
    assert template.tags == "debian;web" and template.cores == 2 and template.unprivileged and not template.nesting
    assert 'value="debian, web"' in client.get(response.location).text

    response = logged_in.post("/templates/new", config_data(ostemplate="local:vztmpl/made-up.tar.zst", name="other"))
    assert response.status_code == 200 and "Choose one of the OS templates found on the cluster." in response.text


def test_create_falls_back_to_free_text_when_proxmox_is_down(logged_in, client, db, pve):
    pve.faults.unreachable = True
    page = client.get("/templates/new").text
    assert 'name="ostemplate"' in page and "<select" not in page.split('name="ostemplate"')[0].rsplit("<", 1)[-1]
    assert "Proxmox could not be asked" in page
    response = logged_in.post("/templates/new", config_data(ostemplate="nfs:vztmpl/custom.tar.zst"))
    assert response.status_code == 302
    assert services.find_template("web").ostemplate == "nfs:vztmpl/custom.tar.zst"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("cores", "0", "Number must be between 1 and 8192."),
    ("cores", "9000", "Number must be between 1 and 8192."),
    ("memory", "8", "Number must be at least 16."),
    ("swap", "-1", "Number must be at least 0."),
    ("disk", "0", "Number must be at least 1."),
    ("tags", "ok, -bad", "Invalid tag “-bad”"),
    ("name", "", "This field is required."),
])
def test_invalid_values_get_field_errors_and_nothing_is_saved(logged_in, db, field, value, message):
    response = logged_in.post("/templates/new", config_data(**{field: value}))
    assert response.status_code == 200
    assert message in response.text and "is-invalid" in response.text
    assert services.template_count() == 0


def test_name_must_be_unique_on_create_and_edit(logged_in, db):
    make_template(db, "web")
    other = make_template(db, "db")
    assert "A template called “Web” already exists." in logged_in.post("/templates/new", config_data(name="Web")).text
    response = logged_in.post(f"/templates/{other.id}/edit", config_data(name="web"))
    assert response.status_code == 200 and "already exists" in response.text
    db.session.expire_all()
    assert db.session.get(ContainerTemplate, other.id).name == "db"


def test_edit_page_manages_scripts(logged_in, client, db):
    template = make_template(db, "web")
    base = f"/templates/{template.id}"
    for name in ("one", "two", "three"):
        response = logged_in.post(f"{base}/scripts/add", {"new-script-name": name, "new-script-content": f"echo {name}\r\n",
                                                          "new-script-enabled": "y"})
        assert response.status_code == 302
    assert logged_in.post(f"{base}/scripts/add", {"new-script-name": "empty"}).status_code == 200
    ids = {s.name: s.id for s in template.scripts}
    logged_in.post(f"{base}/scripts/{ids['three']}/up")
    logged_in.post(f"{base}/scripts/{ids['one']}/toggle")
    logged_in.post(f"{base}/scripts/{ids['two']}/delete")
    logged_in.post(f"{base}/scripts/{ids['one']}", {f"script-{ids['one']}-name": "first",
                                                    f"script-{ids['one']}-content": "echo first"})
    db.session.expire_all()
    scripts = db.session.get(ContainerTemplate, template.id).scripts
    assert [(s.name, s.enabled, s.content) for s in scripts] == [("first", False, "echo first"), ("three", True, "echo three\n")]
    page = client.get(f"{base}/scripts").text
    assert page.index('data-script="first"') < page.index('data-script="three"') and "disabled" in page


def test_edit_page_manages_files_packages_buckets_and_services(logged_in, client, db):
    from app.models import PackageBucket

    template = make_template(db, "web")
    bucket = PackageBucket(name="tools", packages=[TemplatePackage(manager="apt", name="htop")])
    db.session.add(bucket)
    db.session.commit()
    base = f"/templates/{template.id}"
    bad = logged_in.post(f"{base}/files/add", {"new-file-name": "../passwd", "new-file-target_path": "etc",
                                               "new-file-policy": "replace"})
    assert bad.status_code == 200
    assert "Use a plain file name" in bad.text and "Use an absolute path" in bad.text
    assert logged_in.post(f"{base}/files/add", {"new-file-name": "site.conf", "new-file-target_path": "/etc/nginx",
                                                "new-file-policy": "default", "new-file-content": "x"}).status_code == 302
    assert logged_in.post(f"{base}/packages/add", {"new-package-manager": "pip", "new-package-name": "httpie",
                                                   "new-package-version": "3.2.4"}).status_code == 302
    again = logged_in.post(f"{base}/packages/add", {"new-package-manager": "pip", "new-package-name": "httpie"})
    assert "pip package “httpie” is already in the list." in again.text
    assert logged_in.post(f"{base}/buckets/attach", {"bucket_id": str(bucket.id)}).status_code == 302
    bad_port = logged_in.post(f"{base}/services/add", {"new-service-name": "nginx", "new-service-port": "70000",
                                                       "new-service-scheme": "http"})
    assert "Number must be between 1 and 65535." in bad_port.text
    assert logged_in.post(f"{base}/services/add", {"new-service-name": "nginx", "new-service-port": "80",
                                                   "new-service-scheme": "http", "new-service-web_path": "/"}).status_code == 302
    db.session.expire_all()
    template = services.get_template(template.id)
    assert [(f.name, f.policy) for f in template.files] == [("site.conf", "default")]
    assert [(p.manager, p.name, p.version) for p in template.packages] == [("pip", "httpie", "3.2.4")]
    assert [b.name for b in template.buckets] == ["tools"] and template.services[0].port == 80
    packages = client.get(f"{base}/packages").text
    assert "httpie" in packages and "htop" in packages


def test_a_provided_service_is_edited_in_place(logged_in, client, db):
    template = make_template(db, "web")
    base = f"/templates/{template.id}"
    logged_in.post(f"{base}/services/add", {"new-service-name": "app", "new-service-port": "8000",
                                            "new-service-scheme": "http"})
    service = services.get_template(template.id).services[0]
    prefix = f"service-{service.id}"
    bad = logged_in.post(f"{base}/services/{service.id}", {f"{prefix}-name": "app", f"{prefix}-port": "0",
                                                             f"{prefix}-scheme": "http"})
    assert "Number must be between 1 and 65535." in bad.text
    db.session.expire_all()
    assert services.get_template(template.id).services[0].port == 8000  # nothing half-saved
    saved = logged_in.post(f"{base}/services/{service.id}", {f"{prefix}-name": "app", f"{prefix}-port": "8443",
                                                               f"{prefix}-scheme": "https", f"{prefix}-web_path": "/ui"})
    assert saved.status_code == 302
    db.session.expire_all()
    edited = services.get_template(template.id).services
    assert [(s.name, s.port, s.scheme, s.web_path) for s in edited] == [("app", 8443, "https", "/ui")]
    assert "https port 8443" in client.get(f"{base}/edit").text


def test_htmx_sub_form_answers_with_a_toast_event(logged_in, client, db):
    template = make_template(db, "web")
    response = logged_in.post(f"/templates/{template.id}/scripts/add", {"new-script-name": "one", "new-script-content": "true"},
                              headers={"HX-Request": "true"}, follow_redirects=True)
    assert response.status_code == 200
    assert '"toast": {"message": "Script \\u201cone\\u201d added."' in response.headers["HX-Trigger"]
    invalid = logged_in.post(f"/templates/{template.id}/scripts/add", {"new-script-name": "two"},
                             headers={"HX-Request": "true"})
    assert invalid.status_code == 200 and "This field is required." in invalid.text


def test_duplicate_copies_everything(logged_in, db):
    template = full_template(db)
    response = logged_in.post(f"/templates/{template.id}/duplicate")
    copy = services.find_template("jellyfin (copy)")
    assert response.location.endswith(f"/templates/{copy.id}/edit")
    copy = services.get_template(copy.id)
    assert [s.name for s in copy.scripts] == ["prepare", "repo", "install"]
    assert len(copy.files) == 1 and len(copy.packages) == 2 and copy.services[0].port == 8096
    assert [b.name for b in copy.buckets] == ["tools"] and copy.tags == "media"
    logged_in.post(f"/templates/{template.id}/duplicate")
    assert services.find_template("jellyfin (copy 2)") is not None


def test_delete_confirmation_counts_containers_which_keep_working(logged_in, client, db):
    template = make_template(db, "web")
    db.session.add_all([Container(vmid=900 + i, node="pve1", template_id=template.id) for i in range(2)])
    db.session.commit()
    page = client.get(f"/templates/{template.id}/delete").text
    assert "2 containers</strong> were created from it." in page
    assert services.find_template("web") is not None  # the GET changed nothing
    assert client.post(f"/templates/{template.id}/delete").status_code == 400  # no CSRF token
    response = logged_in.post(f"/templates/{template.id}/delete")
    assert response.status_code == 302
    db.session.expire_all()
    assert services.find_template("web") is None
    assert [c.template_id for c in db.session.scalars(db.select(Container).where(Container.vmid >= 900))] == [None, None]


def test_grid_queries_do_not_grow_with_templates(logged_in, client, db):
    from sqlalchemy import event

    def count_queries(url):
        statements = []
        listener = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            client.get(url)
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        return len(statements)

    full_template(db)
    one = count_queries("/templates")
    for i in range(5):
        template = make_template(db, f"t{i}", tags="x")
        template.scripts = [TemplateScript(name="s", content="true")]
        template.packages = [TemplatePackage(manager="apt", name="curl")]
    db.session.commit()
    assert count_queries("/templates") == one


@pytest.mark.parametrize(("manager", "name", "message"), [
    ("pip", "a/../../x", "is a path or URL, not a package name"),
    ("npm", "owner/repo", "a GitHub “owner/repo” is not an npm package"),
    ("pip", "x @ https://evil.example/x.whl", "is a path or URL"),
    ("apt", "../x.deb", "is a path or URL"),
])
def test_package_form_refuses_paths_and_urls(logged_in, db, manager, name, message):
    template = make_template(db, "web")
    response = logged_in.post(f"/templates/{template.id}/packages/add",
                              {"new-package-manager": manager, "new-package-name": name})
    assert response.status_code == 200 and message in response.text and "is-invalid" in response.text
    db.session.expire_all()
    assert services.get_template(template.id).packages == []


def test_bucket_import_refuses_a_url_and_adds_nothing(logged_in, db):
    bucket = services.create_bucket("tools")
    response = logged_in.post(f"/templates/packages/{bucket.id}/import",
                              {f"import-{bucket.id}-text": "curl\nnpm:git+https://github.com/a/b.git\n",
                               f"import-{bucket.id}-manager": "apt"})
    assert "line 2: “git+https://github.com/a/b.git” is a path or URL" in response.text
    db.session.expire_all()
    assert db.session.get(type(bucket), bucket.id).packages == []


def test_file_target_is_normalised_and_traversal_refused(logged_in, db):
    template = make_template(db, "web")
    base = f"/templates/{template.id}/files/add"
    bad = logged_in.post(base, {"new-file-name": "x.conf", "new-file-target_path": "/etc/../../x",
                                "new-file-policy": "replace"})
    assert "contains “..”" in bad.text
    assert logged_in.post(base, {"new-file-name": "x.conf", "new-file-target_path": "/etc//nginx/./",
                                 "new-file-policy": "replace"}).status_code == 302
    db.session.expire_all()
    assert [f.target_path for f in services.get_template(template.id).files] == ["/etc/nginx"]


def test_a_name_longer_than_its_column_is_a_field_error(logged_in, db):
    response = logged_in.post("/templates/new", config_data(name="n" * 101))
    assert "At most 100 characters." in response.text
    assert services.template_count() == 0


def test_bucket_forms_create_rename_add_and_put_errors_on_their_field(logged_in, client, db):
    from app.models import PackageBucket

    created = logged_in.post("/templates/packages/new", {"new-name": "tools", "new-description": ""})
    bucket = db.session.scalar(db.select(PackageBucket).where(PackageBucket.name == "tools"))
    assert created.headers["Location"].endswith(f"#bucket-{bucket.id}")
    again = logged_in.post("/templates/packages/new", {"new-name": "Tools"})
    assert again.status_code == 200 and "A bucket called “Tools” already exists." in again.text
    base = f"/templates/packages/{bucket.id}"
    assert logged_in.post(f"{base}/rename", {f"rename-{bucket.id}-name": "cli tools"}).status_code == 302
    assert logged_in.post(f"{base}/add", {f"add-{bucket.id}-manager": "apt",
                                          f"add-{bucket.id}-name": "htop"}).status_code == 302
    twice = logged_in.post(f"{base}/add", {f"add-{bucket.id}-manager": "apt", f"add-{bucket.id}-name": "htop"})
    assert "apt package “htop” is already in the list." in twice.text
    bad = logged_in.post(f"{base}/import", {f"import-{bucket.id}-text": "Bad Name\nnpm:owner/repo",
                                            f"import-{bucket.id}-manager": "apt"})
    assert "line 1: “Bad Name” is not a Debian package name" in bad.text and "line 2: “owner/repo”" in bad.text
    db.session.expire_all()
    bucket = db.session.get(PackageBucket, bucket.id)
    assert bucket.name == "cli tools" and [p.name for p in bucket.packages] == ["htop"]
    assert "cli tools" in client.get("/templates/packages").text


def test_tag_fields_say_the_same_rule_in_the_template_editor_and_the_wizard(logged_in, client):
    rule = "Separated by spaces or commas; lower-case letters, digits, _ - + . (Proxmox&#39;s rules)."
    assert rule in client.get("/templates/new").text
    logged_in.post("/containers/create/template", {"template": "scratch", "next": "1"})
    assert rule in client.get("/containers/create/configure").text
