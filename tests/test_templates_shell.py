"""The helper library every template script runs with, exercised by real bash in a temp folder."""
from __future__ import annotations

import os
import stat
import subprocess

from app.container_templates import script_with_helpers


def run(script: str, tmp_path, **env) -> subprocess.CompletedProcess:
    environment = {"PATH": os.environ["PATH"], "PROXBOARD_CREDENTIALS_DIR": str(tmp_path / "credentials"), **env}
    return subprocess.run(["bash", "-s"], input=script_with_helpers(script), capture_output=True, text=True,
                          env=environment, timeout=20)


def test_save_credential_writes_key_value_lines_with_mode_600_and_replaces_a_key(tmp_path):
    result = run('save_credential myapp USERNAME admin\nsave_credential myapp PASSWORD first\n'
                 'save_credential myapp PASSWORD "second one"\n', tmp_path)
    assert result.returncode == 0, result.stderr
    path = tmp_path / "credentials" / "myapp"
    assert path.read_text() == "USERNAME=admin\nPASSWORD=second one\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert "second one" not in result.stdout  # values are never logged
    assert "::proxboard::info::Saved credential PASSWORD for myapp" in result.stdout


def test_save_credential_refuses_bad_names(tmp_path):
    result = run("save_credential ../etc KEY value\n", tmp_path)
    assert result.returncode != 0 and "::proxboard::error::save_credential: invalid service name" in result.stdout
    assert not (tmp_path / "credentials").exists()


def test_gen_password_length_and_alphabet(tmp_path):
    result = run('gen_password\ngen_password 64\ngen_password 8\n', tmp_path)
    lines = result.stdout.split()
    assert [len(line) for line in lines] == [24, 64, 8] and all(line.isalnum() for line in lines)
    assert lines[0] != run("gen_password\n", tmp_path).stdout.strip()


def test_log_functions_print_recognisable_prefixes(tmp_path):
    result = run('log_step "Installing"\nlog_info "hello world"\nlog_warn careful\nlog_error broken\n', tmp_path)
    assert result.stdout.splitlines() == ["::proxboard::step::Installing", "::proxboard::info::hello world",
                                          "::proxboard::warn::careful", "::proxboard::error::broken"]


def test_strict_mode_stops_at_the_first_failure_and_says_where(tmp_path):
    result = run('log_info before\nfalse\nlog_info after\n', tmp_path)
    assert result.returncode == 1 and "after" not in result.stdout
    assert "::proxboard::error::command failed (exit 1) at line 2: false" in result.stdout  # the script's own line
    with_shebang = run('#!/bin/bash\nlog_info before\n\nfalse\n', tmp_path)
    assert "command failed (exit 1) at line 4: false" in with_shebang.stdout
    assert run('echo "$UNSET_VARIABLE"\n', tmp_path).returncode != 0


def test_detect_os_reads_os_release(tmp_path):
    release = tmp_path / "os-release"
    release.write_text('ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n')
    result = run('detect_os\necho "$OS_ID $OS_VERSION $OS_CODENAME"\n', tmp_path, PROXBOARD_OS_RELEASE=str(release))
    assert result.stdout.strip() == "debian 12 bookworm"


def test_wait_for_apt_returns_when_nothing_holds_the_lock(tmp_path):
    assert run("wait_for_apt 4 && log_info free\n", tmp_path).stdout.strip() == "::proxboard::info::free"
