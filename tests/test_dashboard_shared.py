"""The dashboard drawn once for everyone within the cache interval, and refreshes that send nothing new.

These apps keep Proxmox answers (and so the dashboard's body) for 60 s, so that "within the interval"
is certain; a change made through Proxboard, or recorded by it, must show at once all the same.
"""
from __future__ import annotations

import re

import pytest
from flask import template_rendered

from app.extensions import db as _db
from app.proxmox import get_proxmox
from tests.fixtures.app import AuthActions, IsolatedClient, csrf_token_from
from tests.fixtures.factories import make_container, make_services, make_user

HTMX = {"HX-Request": "true"}
FORM_TOKENS = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def app_overrides():
    return {"PVE_CACHE_SECONDS": 60}


@pytest.fixture
def bodies_drawn():
    """How many times the dashboard's body template was rendered, in any app of this process."""
    drawn = []

    def count(sender, template, context, **extra):
        if template.name == "dashboard/_body.html":
            drawn.append(sender)

    template_rendered.connect(count)
    yield drawn
    template_rendered.disconnect(count)


def signed_in(app, role: str):
    """A client of ``app`` signed in as a new user named after ``role``."""
    app.test_client_class = IsolatedClient
    client = app.test_client()
    with app.app_context():
        from app.models import User

        if not _db.session.scalar(_db.select(User).filter_by(username=role)):
            make_user(role, role=role)
    assert AuthActions(client, app).login(role, create=False).status_code == 302
    return client


def card(html: str, vmid: int) -> str:
    match = re.search(rf'<div class="col" id="ct-{vmid}".*?(?=<div class="col" id="ct-|\Z)', html, re.S)
    assert match, f"no card for CT {vmid}"
    return match.group(0)


def test_viewers_within_the_interval_share_one_render_each_with_their_own_csrf_token(app, bodies_drawn):
    with app.app_context():
        make_container(vmid=900, node="pve1", lifecycle="gone", snapshot={"name": "old-web"})  # a card with a form
        make_user("another-operator", role="operator")
    first = signed_in(app, "operator")
    second = app.test_client()
    assert AuthActions(second, app).login("another-operator", create=False).status_code == 302
    bodies_drawn.clear()
    mine, mine_again, theirs = first.get("/"), first.get("/", headers=HTMX), second.get("/")
    assert mine.status_code == mine_again.status_code == theirs.status_code == 200
    assert len(bodies_drawn) == 1, "a page, its refresh and another operator's page drew the body again"
    for html in (mine.text, theirs.text):
        assert 'data-action="clear"' in card(html, 900)
        assert set(FORM_TOKENS.findall(html)) == {csrf_token_from(html)}, "a card carries another session's token"
        assert app.extensions["render_placeholder"] not in html
    assert csrf_token_from(mine.text) != csrf_token_from(theirs.text)
    # The second operator's Clear works: the token in their copy of the shared card is their own.
    token = FORM_TOKENS.search(card(theirs.text, 900)).group(1)
    cleared = second.post("/containers/900/clear", data={"csrf_token": token})
    assert cleared.status_code == 302
    assert 'id="ct-900"' not in first.get("/").text, "the cleared card stayed in the shared render"


def test_a_viewer_never_gets_the_operators_buttons_drawn_before(app, bodies_drawn):
    operator, viewer = signed_in(app, "operator"), signed_in(app, "viewer")
    bodies_drawn.clear()
    operator_page, viewer_page = operator.get("/").text, viewer.get("/").text
    assert len(bodies_drawn) == 2
    assert 'data-bulk-select' in operator_page and 'data-bulk-select' not in viewer_page
    assert '/containers/104/actions/start' in card(operator_page, 104)
    assert '/containers/104/actions/start' not in card(viewer_page, 104)


def test_an_action_shows_at_once_for_everyone_not_after_the_interval(app, pve, bodies_drawn):
    operator, viewer = signed_in(app, "operator"), signed_in(app, "viewer")
    assert 'data-status="stopped"' in card(viewer.get("/").text, 104)
    html = operator.get("/").text
    token = csrf_token_from(html)
    assert operator.post("/containers/104/actions/start", data={"csrf_token": token}, headers=HTMX).status_code == 200
    after = card(viewer.get("/", headers=HTMX).text, 104)
    assert 'data-testid="pending"' in after or 'data-status="running"' in after


def test_what_proxboard_records_shows_at_once(app, bodies_drawn):
    viewer = signed_in(app, "viewer")
    assert 'data-testid="service-dots"' not in card(viewer.get("/").text, 101)
    with app.app_context():
        from app.models import Container

        record = Container.current(101)
        make_services(record, 2)  # a discovery run recorded two services
    assert 'data-testid="service-dots"' in card(viewer.get("/").text, 101)


def test_a_refresh_showing_the_current_body_gets_304_and_no_body(app, pve):
    viewer = signed_in(app, "viewer")
    page = viewer.get("/")
    etag = re.search(r'data-etag="&#34;([0-9a-f]+)&#34;"', page.text).group(1)
    fresh = viewer.get("/", headers={**HTMX, "If-None-Match": f'"{etag}"'})
    assert fresh.status_code == 304 and fresh.data == b""
    pve.add_container(vmid=555, node="pve1", status="running", hostname="newcomer")
    with app.app_context():
        get_proxmox().invalidate()  # the interval has passed
    changed = viewer.get("/", headers={**HTMX, "If-None-Match": f'"{etag}"'})
    assert changed.status_code == 200 and "newcomer" in changed.text
    assert changed.headers["ETag"] != f'"{etag}"' and "no-cache" in changed.headers["Cache-Control"]
    assert changed.headers["Vary"] and "HX-Request" in changed.headers["Vary"]


def test_another_filter_or_search_is_a_render_of_its_own(app, bodies_drawn):
    viewer = signed_in(app, "viewer")
    bodies_drawn.clear()
    everything = viewer.get("/").text
    running = viewer.get("/?status=running").text
    searched = viewer.get("/?q=pve3").text
    assert len(bodies_drawn) == 3
    assert everything != running and 'data-status="stopped"' not in running.split('data-testid="grid"')[1]
    assert 'id="ct-' in searched and all(f'href="/nodes/{node}"' not in searched.split('data-testid="grid"')[1]
                                          for node in ("pve1", "pve2"))


# -- several processes: two apps on one Redis and one database ----------------------------------------

@pytest.fixture
def shared_apps(apps_on_redis):
    return apps_on_redis(PVE_CACHE_SECONDS=60)


def test_two_processes_on_redis_draw_once_and_see_each_other_s_changes(shared_apps, pve, bodies_drawn):
    clients = [signed_in(app, role) for app, role in zip(shared_apps, ("viewer", "operator"))]
    viewer_b = signed_in(shared_apps[1], "viewer")
    bodies_drawn.clear()
    pve.clear_requests()
    first = clients[0].get("/")
    second = viewer_b.get("/", headers=HTMX)
    assert first.status_code == second.status_code == 200
    assert len(bodies_drawn) == 1, "the second process drew the same body again"
    assert pve.count_requests("GET", "/cluster/resources") == 1
    assert csrf_token_from(first.text) not in second.text
    # An action through the second process shows on the first at once.
    html = clients[1].get("/").text
    token = csrf_token_from(html)
    assert clients[1].post("/containers/104/actions/start", data={"csrf_token": token},
                           headers=HTMX).status_code == 200
    after = card(clients[0].get("/").text, 104)
    assert 'data-testid="pending"' in after or 'data-status="running"' in after


def test_every_filter_search_and_page_of_the_interval_shares_one_merge_with_the_records(app, count_queries):
    viewer = signed_in(app, "viewer")
    viewer.get("/")
    with count_queries() as queries:
        for path in ("/?status=running", "/?q=pve2", "/?page=2", "/?status=stopped&q=1"):
            assert viewer.get(path).status_code == 200
    reads = [q for q in queries.statements if "FROM containers" in q and "WHERE containers.lifecycle !=" in q]
    assert not reads, f"the records were read again for another filter within the interval: {len(reads)} times"


def test_a_record_changed_meanwhile_shows_in_the_next_filter_drawn(app):
    viewer = signed_in(app, "viewer")
    assert "renamed-by-proxboard" not in viewer.get("/").text
    with app.app_context():
        from app.models import Container

        record = Container.current(101)
        record.hostname = "renamed-by-proxboard"
        _db.session.commit()
    assert "renamed-by-proxboard" in card(viewer.get("/?status=running").text, 101)
