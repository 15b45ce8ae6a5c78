#!/usr/bin/env bash
# `make run`: migrate, make sure someone can sign in, then serve Proxboard on http://127.0.0.1:5000.
# Without PROXBOARD_PVE_HOST it starts the Proxmox simulator on a loopback port (demo mode).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export FLASK_APP=wsgi
HOST=${PROXBOARD_RUN_HOST:-127.0.0.1}
PORT=${PROXBOARD_RUN_PORT:-5000}
mkdir -p instance
children=()
cleanup() { for pid in "${children[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

if [ -z "${PROXBOARD_PVE_HOST:-}" ]; then
  sim_port=$($BIN/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  token=$($BIN/python -c 'import secrets; print(secrets.token_hex(16))')
  log=instance/pvesim.log
  $BIN/python -m tests.pvesim --port "$sim_port" --nodes 3 --containers 20 --token "root@pam!proxboard=$token" >"$log" 2>&1 &
  children+=($!)
  for _ in $(seq 50); do grep -q "CA certificate:" "$log" 2>/dev/null && break; sleep 0.1; done
  ca=$(sed -n 's/^CA certificate: //p' "$log")
  [ -n "$ca" ] || { echo "The Proxmox simulator did not start; see $log"; exit 1; }
  export PROXBOARD_PVE_HOST=127.0.0.1 PROXBOARD_PVE_PORT="$sim_port" PROXBOARD_PVE_USER=root@pam \
         PROXBOARD_PVE_TOKEN_NAME=proxboard PROXBOARD_PVE_TOKEN_VALUE="$token" PROXBOARD_PVE_VERIFY_SSL="$ca" \
         PROXBOARD_DEMO_MODE=true
  echo "Demo mode: a simulated Proxmox cluster (3 nodes, 20 containers) runs at https://127.0.0.1:$sim_port"
  if [ -x /usr/sbin/sshd ] && [ -z "${PROXBOARD_SSH_KEY_FILE:-}" ]; then
    ssh_log=instance/sshsim.log
    $BIN/python -m tests.sshsim --workdir instance/demo-ssh --pve-admin "https://127.0.0.1:$sim_port/_sim" \
      --pve-ca "$ca" >"$ssh_log" 2>&1 &
    children+=($!)
    for _ in $(seq 100); do grep -q "known hosts:" "$ssh_log" 2>/dev/null && break; sleep 0.1; done
    ssh_port=$(sed -n 's/^sshsim listening on 127.0.0.1://p' "$ssh_log")
    if [ -n "$ssh_port" ]; then
      export PROXBOARD_SSH_PORT="$ssh_port" PROXBOARD_SSH_KEY_FILE="$(sed -n 's/^key file: //p' "$ssh_log")" \
             PROXBOARD_SSH_KNOWN_HOSTS="$(sed -n 's/^known hosts: //p' "$ssh_log")"
      echo "Demo nodes answer SSH on 127.0.0.1:$ssh_port (fake containers: services and provisioning work end to end)."
    else
      echo "The demo SSH node did not start (see $ssh_log): service checks and provisioning will report SSH errors."
    fi
  fi
  echo "Set PROXBOARD_PVE_HOST (and a token) to talk to your real Proxmox instead."
fi

$BIN/flask db upgrade
if $BIN/flask templates --help >/dev/null 2>&1; then
  $BIN/flask templates seed --if-empty || true
fi
if $BIN/flask worker --help >/dev/null 2>&1; then
  $BIN/flask worker >instance/worker.log 2>&1 &
  children+=($!)
fi
echo
$BIN/flask users ensure-admin
echo "Proxboard: http://$HOST:$PORT"
$BIN/flask run --host "$HOST" --port "$PORT" --with-threads
