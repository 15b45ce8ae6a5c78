"""``/widgets/summary`` as Homepage's customapi widget reads it: the dashboard's numbers as flat JSON, for a
viewer's API token, without a Proxmox request; and the README's snippet asks only for fields it has."""
from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from app.alerts.engine import evaluate, gather_facts
from app.alerts.services import create_rule
from app.models import Container, utcnow
from tests.fixtures.app import join_app_threads
from tests.test_dashboard import stat

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture
def app_overrides() -> dict:
    return {"SNAPSHOT_SECONDS": 0}  # every dashboard render records what Proxmox listed


@pytest.fixture
def token(make) -> str:
    """A viewer's API token, as Homepage sends it in its ``headers``."""
    return make.token("homepage")


def widget(client, token: str) -> dict:
    response = client.get("/widgets/summary", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert response.mimetype == "application/json" and "Set-Cookie" not in response.headers
    return response.json


def test_widget_shows_the_dashboard_counts_without_asking_proxmox(logged_in, client, pve, db, make, token):
    html = client.get("/").text
    join_app_threads()  # the dashboard's backup index sweep: its calls are not the widget's
    pve.clear_requests()
    counts = widget(client, token)
    assert pve.requests == []
    assert counts["containers"] == stat(html, "total") == len(pve.containers)
    assert (counts["running"], counts["stopped"], counts["other"]) == \
        (stat(html, "running"), stat(html, "stopped"), stat(html, "other"))
    assert (counts["failing"], counts["services"], counts["services_failing"], counts["alerts"]) == (0, 0, 0, 0)
    assert counts["recorded_at"] is not None

    # A container stops behind Proxboard's back, a service fails, a creation fails, an alert opens.
    record = db.session.scalar(db.select(Container).filter_by(vmid=100))
    _, broken = make.services(record, 2)
    broken.status = "failed"
    db.session.commit()
    make.container(990, "pve1", lifecycle="error", hostname="broken")
    create_rule("container_stopped", [], for_minutes=0)
    t0 = utcnow()
    evaluate(gather_facts(), t0 - timedelta(minutes=1))
    pve.containers[101].status = "stopped"
    evaluate(gather_facts(), t0)
    html = client.get("/").text
    join_app_threads()
    pve.clear_requests()
    counts = widget(client, token)
    assert pve.requests == []
    assert counts["containers"] == stat(html, "total") == len(pve.containers) + 1
    assert (counts["running"], counts["stopped"], counts["other"]) == \
        (stat(html, "running"), stat(html, "stopped"), stat(html, "other"))
    assert counts["failing"] == 1  # the failed creation ("Other / Error" on the dashboard)
    assert (counts["services"], counts["services_failing"], counts["alerts"]) == (2, 1, 1)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_widget_needs_a_valid_token(client, token):
    for headers in ({}, {"Authorization": "Bearer pxb_" + "x" * 43}):
        response = client.get("/widgets/summary", headers=headers)
        assert response.status_code == 401 and "Location" not in response.headers
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")
        assert "containers" not in response.json


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_readme_snippet_maps_fields_the_widget_has(client, token):
    section = README.read_text().split("### Homepage and Homarr", 1)[1].split("\n## ", 1)[0]
    snippet = re.search(r"```yaml\n(.*?)```", section, re.DOTALL).group(1)
    assert "type: customapi" in snippet and "url: https://proxboard.lan/widgets/summary" in snippet
    assert "Authorization: Bearer {{HOMEPAGE_VAR_PROXBOARD_TOKEN}}" in snippet
    fields = re.findall(r"- field: (\w+)", snippet)
    assert fields and set(fields) <= set(widget(client, token))
