"""Backup coverage at a glance: backup ages on the cards, the ``backup:`` search and the Backups page.

The simulator's seeded backups (tests/pvesim/backups.py): VMIDs ending in 9 have none and no job
selects them; those ending in 5 have a 40-day-old local archive (and a 6-day-old one on the NFS share
when divisible by 3: CT 105) and only the disabled job ``backup-weekly`` selects them; every other
container has a Backup Server backup 0 to 5 days old.
"""
from __future__ import annotations

import html as markup
import re
import time

import pytest

from tests.fixtures.app import join_app_threads
from tests.htmx import HX
from tests.test_dashboard import card


def shown(html: str) -> set[int]:
    return {int(v) for v in re.findall(r'<div class="col" id="ct-(\d+)"', html)}


def badge(html: str) -> str | None:
    match = re.search(r'<span class="badge[^"]*" data-testid="backup-age" data-backup="(\w+)"\s+title="([^"]*)">'
                      r'<i class="bi bi-archive"></i> ([^<]+)</span>', html)
    return match and f"{match.group(1)}|{match.group(3).strip()}|{match.group(2)}"


def ending(pve, *digits: int) -> set[int]:
    return {vmid for vmid in pve.containers if vmid % 10 in digits}


def without_backup_since(pve, days: float) -> set[int]:
    """The containers whose newest backup in the simulator is older than ``days`` (or that have none)."""
    newest: dict[int, int] = {}
    for entry in pve.cluster.backups.values():
        newest[entry["vmid"]] = max(newest.get(entry["vmid"], 0), entry["ctime"])
    return {vmid for vmid in pve.containers if time.time() - newest.get(vmid, 0) > days * 86400}


@pytest.fixture
def warm(app, logged_in, client):
    """Containers recorded and the backup index loaded, as on a dashboard in use."""
    client.get("/")
    join_app_threads()
    index = app.extensions["proxmox"].backup_index(wait=True)
    assert index is not None and not index.failed
    return index


# -- the cards -------------------------------------------------------------------------------------------


def test_cards_show_how_old_each_container_s_newest_backup_is(logged_in, client, pve, warm):
    html = client.get("/").text
    assert badge(card(html, 100)).startswith("recent|Backup 4 d ago|Newest of 2 backups: ")  # 100 % 6 == 4
    assert badge(card(html, 102)).startswith("recent|Backup 2 h ago|Newest of 3 backups: ")  # and one on NFS
    assert re.fullmatch(r"old\|Backup 40 d ago\|Newest of 1 backup: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC",
                        badge(card(html, 115)))
    assert badge(card(html, 105)).startswith("recent|Backup 6 d ago|")  # the NFS archive, within 7 days
    assert badge(card(html, 109)) == "none|No backup|Proxmox holds no backup of this container on any backup storage."
    assert 'class="badge text-bg-danger"' in card(html, 109) and 'class="badge text-bg-warning"' in card(html, 115)


def test_the_container_page_header_shows_the_same_age(logged_in, client, warm):
    assert badge(client.get("/containers/115").text).startswith("old|Backup 40 d ago|")
    assert badge(client.get("/containers/119").text).startswith("none|No backup|")


def test_no_badge_and_never_no_backup_while_the_index_is_not_loaded(logged_in, client, pve):
    html = client.get("/").text  # the first render: the sweep only starts now
    assert 'data-testid="backup-age"' not in html and "No backup" not in html
    join_app_threads()
    assert "No backup" in card(client.get("/").text, 109)  # the next refresh has it


def test_a_backup_storage_never_read_makes_no_container_look_unbacked(logged_in, client, pve):
    pve.faults.fail_path("GET", r"/storage/pbs/content", 500, "pbs: datastore offline")
    client.get("/")
    join_app_threads()
    html = client.get("/").text
    assert "No backup" not in html  # it may be on the Backup Server, which did not answer
    assert badge(card(html, 115)).startswith("old|Backup 40 d ago|")  # known: on local


def test_one_cluster_resources_call_per_render_with_ages_on_the_cards(logged_in, client, pve, warm):
    for headers in ({}, HX):
        pve.clear_requests()
        html = client.get("/", headers=headers).text
        assert pve.count_requests("GET", "/cluster/resources") == 1 and len(pve.requests) == 1
        assert html.count('data-testid="backup-age"') == len(pve.containers)


# -- the backup: search ----------------------------------------------------------------------------------


@pytest.mark.parametrize("term", ["backup:>7d", "backup:7d", "backup:>1w", "backup:>168h"])
def test_backup_search_finds_containers_without_a_recent_backup(logged_in, client, pve, warm, term):
    html = client.get("/", query_string={"q": term}).text
    assert shown(html) == without_backup_since(pve, 7) == {109, 115, 119}
    assert 'data-testid="search-error"' not in html
    assert shown(client.get("/", query_string={"q": "backup:>3d"}).text) == without_backup_since(pve, 3)


def test_backup_search_for_none_finds_the_containers_without_any(logged_in, client, pve, warm):
    html = client.get("/", query_string={"q": "backup:none"}).text
    assert shown(html) == ending(pve, 9)
    assert 'data-testid="search-error"' not in html


def test_backup_search_combines_with_words_and_the_status_pills(logged_in, client, pve, warm):
    html = client.get("/", query_string={"q": "backup:<1d pve1"}).text
    expected = {vmid for vmid, ct in pve.containers.items()
                if vmid % 10 not in (5, 9) and vmid % 6 == 0 and ct.node == "pve1"}
    assert shown(html) == expected
    running = client.get("/", query_string={"q": "backup:none", "status": "running"}).text
    assert shown(running) == {v for v in ending(pve, 9) if pve.containers[v].status == "running"}
    pill = re.search(r'data-filter="all"[^>]*>All <span class="badge[^"]*">(\d+)<', running)
    assert int(pill.group(1)) == len(ending(pve, 9))


def test_backup_search_waits_for_the_first_sweep(logged_in, client, pve):
    assert shown(client.get("/", query_string={"q": "backup:none"}).text) == ending(pve, 9)


@pytest.mark.parametrize("term", ["backup:soon", "backup:", "backup:0d", "backup:>7y"])
def test_a_bad_backup_term_is_explained_and_ignored(logged_in, client, pve, warm, term):
    response = client.get("/", query_string={"q": term})
    assert response.status_code == 200
    message = markup.unescape(re.search(r'data-testid="search-error">\s*<i[^>]*></i> ([^<]+)</div>',
                                        response.text).group(1))
    assert f"“{term}” is not a backup filter. Use backup:none" in message and "The term was ignored." in message
    assert shown(response.text) == set(pve.containers)


def test_the_search_help_documents_the_backup_term(logged_in, client):
    help_text = re.search(r'data-testid="search-help">(.*?)</details>', client.get("/").text, re.S).group(1)
    assert "<code>backup:none</code>" in help_text and "<code>backup:&gt;7d</code>" in help_text


def test_when_proxmox_cannot_tell_the_search_says_so_instead_of_guessing(logged_in, client, pve):
    pve.faults.fail_path("GET", r"/storage/pbs/content", 500, "pbs: datastore offline")
    response = client.get("/", query_string={"q": "backup:none"})
    assert response.status_code == 200
    problem = re.search(r'data-testid="search-problem">\s*<i[^>]*></i> ([^<]+)</div>', response.text).group(1)
    assert "Cannot tell which containers match backup:none: Proxmox did not list the backups on pbs." in problem
    assert shown(response.text) == set() and 'data-testid="no-match"' not in response.text


def test_an_unreachable_proxmox_gives_the_search_a_reason_not_a_500(logged_in, client, pve):
    pve.faults.unreachable = True  # before any sweep: no index to fall back on
    response = client.get("/", query_string={"q": "backup:>7d"})
    assert response.status_code == 200 and "Cannot tell which containers match backup:&gt;7d" in response.text
    assert shown(response.text) == set()


# -- the Backups page ------------------------------------------------------------------------------------


def section(html: str, testid: str) -> str:
    match = re.search(rf'data-testid="{testid}">(.*?)(?=<div class="(?:col-lg-4|card mb-3)|\Z)', html, re.S)
    assert match, testid
    return match.group(0)


def linked(html: str) -> set[int]:
    return {int(v) for v in re.findall(r'<a href="/containers/(\d+)" data-vmid=', html)}


def test_the_backups_page_lists_jobs_and_what_each_leaves_out(logged_in, client, pve):
    html = client.get("/backups").text
    nightly = re.search(r'<tr data-job="backup-nightly" data-enabled="yes">(.*?)</tr>', html, re.S).group(1)
    excluded = sorted(ending(pve, 5, 9))
    assert f"All containers except CT {', '.join(map(str, excluded))}" in nightly
    assert f"{len(pve.containers) - len(excluded)} containers now" in nightly
    assert "<code>02:00</code>" in nightly and "pbs" in nightly and "Nightly to the Backup Server" in nightly
    assert re.search(r'<time datetime="[^"]+" data-local title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC">', nightly)
    weekly = re.search(r'<tr data-job="backup-weekly" data-enabled="no">(.*?)</tr>', html, re.S).group(1)
    assert f"CT {', '.join(map(str, sorted(ending(pve, 5))))}" in weekly and "disabled" in weekly
    assert "not while disabled" in weekly

    uncovered = section(html, "uncovered")
    assert linked(uncovered) == ending(pve, 9)
    for vmid in ending(pve, 9):
        assert pve.containers[vmid].hostname in uncovered
    assert re.search(r'data-testid="stat-uncovered".*?stat-value">2<', html, re.S)
    paused = section(html, "disabled-only")
    assert linked(paused) == ending(pve, 5) and "by backup-weekly" in paused
    stale = section(html, "not-recent")
    assert linked(stale) == without_backup_since(pve, 7) == {109, 115, 119}
    assert stale.count('data-backup="none"') == 2 and stale.count("Backup 40 d ago") == 1
    assert stale.index('data-backup="none"') < stale.index("Backup 40 d ago")  # none at all first


def test_a_job_restricted_to_a_node_or_pool_is_described_so(app, pve):
    from app.backups.services import describe_selection
    from app.proxmox import BackupJob

    assert describe_selection(BackupJob("b1", "daily", pool="web", node="pve2")) == ("Pool web on node pve2", "")
    many = BackupJob("b2", "daily", vmids=tuple(range(100, 110)))
    assert describe_selection(many) == ("CT 100, 101, 102, 103, 104, 105 and 4 more", ", ".join(map(str, range(100, 110))))


def test_the_backups_page_keeps_what_proxmox_last_said_when_it_fails(logged_in, client, pve):
    assert client.get("/backups").status_code == 200
    pve.faults.fail_path("GET", r"^/cluster/backup$", 500, "cluster filesystem not ready")
    response = client.get("/backups")
    assert response.status_code == 200
    error = re.search(r'data-testid="error-jobs">(.*?)</div>', response.text, re.S).group(1)
    assert "cluster filesystem not ready" in error and "Showing what it said" in error
    assert 'data-job="backup-nightly"' in response.text


def test_the_backups_page_with_proxmox_unreachable_shows_errors_not_a_500(logged_in, client, pve):
    pve.faults.unreachable = True
    response = client.get("/backups")
    assert response.status_code == 200
    for part in ("jobs", "uncovered", "containers", "index"):
        assert f'data-testid="error-{part}"' in response.text
    assert "<tr data-job=" not in response.text and 'data-testid="backup-age"' not in response.text


def test_a_viewer_sees_the_backups_page_from_the_sidebar(auth, client, make, pve):
    make.user("vera", role="viewer")
    auth.login("vera", create=False)
    page = client.get("/").text
    assert re.search(r'href="/backups" data-testid="nav-backups">', page)
    response = client.get("/backups")
    assert response.status_code == 200 and linked(section(response.text, "uncovered")) == ending(pve, 9)
