#!/usr/bin/env bash
# `make run`: migrate, make sure someone can sign in, then serve Proxboard on http://127.0.0.1:5000.
# Without PROXBOARD_PVE_HOST it starts the Proxmox simulator on a loopback port (demo mode); the
# simulated cluster and the demo's SSH keys are kept in instance/ across runs (FRESH=1: start afresh).
# What runs beside the web server (simulator, SSH node, job worker) is listed in instance/demo-status.json,
# which the app reads to show a banner when one of them failed.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export FLASK_APP=wsgi
HOST=${PROXBOARD_RUN_HOST:-127.0.0.1}
PORT=${PROXBOARD_RUN_PORT:-5000}
STATUS=instance/demo-status.json
SIM_STATE=instance/pvesim-state.json
mkdir -p instance
children=()
cleanup() {
  for pid in "${children[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -f "$STATUS"
}
trap cleanup EXIT INT TERM

# part_status NAME STATE MESSAGE [PID] [LOG]: record one part in $STATUS (STATE: running or failed).
part_status() {
  $BIN/python - "$STATUS" "$$" "$@" <<'PY'
import json, os, sys, time
path, run_pid, name, state, message, *rest = sys.argv[1:]
try:
    with open(path) as handle:
        data = json.load(handle)
except (OSError, ValueError):
    data = {}
if data.get("run_pid") != int(run_pid):
    data = {"run_pid": int(run_pid), "started": time.time(), "parts": {}}
part = {"state": state, "message": message}
if rest and rest[0]:
    part["pid"] = int(rest[0])
if len(rest) > 1:
    part["log"] = rest[1]
data["parts"][name] = part
with open(path + ".tmp", "w") as handle:
    json.dump(data, handle, indent=1)
os.replace(path + ".tmp", path)
PY
}
rm -f "$STATUS"

if [ -z "${PROXBOARD_PVE_HOST:-}" ]; then
  sim_port=$($BIN/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  token=$($BIN/python -c 'import secrets; print(secrets.token_hex(16))')
  log=instance/pvesim.log
  if [ -n "${FRESH:-}" ]; then
    rm -rf "$SIM_STATE" instance/demo-ssh/containers
    echo "FRESH=$FRESH: the simulated cluster starts again from its 20 seeded containers (containers created"
    echo "  earlier show as gone on the dashboard; Clear removes them)."
  elif [ -f "$SIM_STATE" ]; then
    echo "Demo mode: the simulated cluster continues from $SIM_STATE (make run FRESH=1 starts it afresh)."
  fi
  # The token goes through the environment: another user's `ps` shows argv, not the environment.
  PVESIM_TOKEN="root@pam!proxboard=$token" $BIN/python -m tests.pvesim --port "$sim_port" --nodes 3 --containers 20 \
    --state "$SIM_STATE" >"$log" 2>&1 &
  sim_pid=$!
  children+=($sim_pid)
  for _ in $(seq 50); do grep -q "CA certificate:" "$log" 2>/dev/null && break; sleep 0.1; done
  ca=$(sed -n 's/^CA certificate: //p' "$log")
  [ -n "$ca" ] || { echo "The Proxmox simulator did not start; see $log"; exit 1; }
  part_status simulator running "The Proxmox simulator" "$sim_pid" "$log"
  export PROXBOARD_PVE_HOST=127.0.0.1 PROXBOARD_PVE_PORT="$sim_port" PROXBOARD_PVE_USER=root@pam \
         PROXBOARD_PVE_TOKEN_NAME=proxboard PROXBOARD_PVE_TOKEN_VALUE="$token" PROXBOARD_PVE_VERIFY_SSL="$ca" \
         PROXBOARD_DEMO_MODE=true
  echo "Demo mode: a simulated Proxmox cluster (3 nodes, $(sed -n 's/^state: loaded \([0-9]*\) containers.*/\1/p' "$log" | grep . || echo 20) containers) runs at https://127.0.0.1:$sim_port"
  ssh_log=instance/sshsim.log
  if [ ! -x /usr/sbin/sshd ] && [ -z "${PROXBOARD_SSH_KEY_FILE:-}" ]; then
    echo "The demo SSH node needs sshd (Debian package openssh-server), which is not installed."
    part_status ssh failed "The demo SSH node is not running: sshd (openssh-server) is not installed, so service checks and provisioning report SSH errors."
  elif [ -z "${PROXBOARD_SSH_KEY_FILE:-}" ]; then
    $BIN/python -m tests.sshsim --workdir instance/demo-ssh --pve-admin "https://127.0.0.1:$sim_port/_sim" \
      --pve-ca "$ca" >"$ssh_log" 2>&1 &
    ssh_pid=$!
    children+=($ssh_pid)
    for _ in $(seq 100); do grep -q "known hosts:" "$ssh_log" 2>/dev/null && break; sleep 0.1; done
    ssh_port=$(sed -n 's/^sshsim listening on 127.0.0.1://p' "$ssh_log")
    if [ -n "$ssh_port" ]; then
      export PROXBOARD_SSH_PORT="$ssh_port" PROXBOARD_SSH_KEY_FILE="$(sed -n 's/^key file: //p' "$ssh_log")" \
             PROXBOARD_SSH_KNOWN_HOSTS="$(sed -n 's/^known hosts: //p' "$ssh_log")"
      echo "Demo nodes answer SSH on 127.0.0.1:$ssh_port."
      part_status ssh running "The demo SSH node" "$ssh_pid" "$ssh_log"
      for _ in $(seq 50); do grep -q "^isolation:" "$ssh_log" 2>/dev/null && break; sleep 0.1; done
      isolation=$(sed -n 's/^isolation: //p' "$ssh_log")
      echo "Demo containers: ${isolation:-unknown isolation (see $ssh_log)}"
      case "$isolation" in
        unavailable*) part_status isolation failed "Demo containers are not isolated (${isolation#unavailable }): browse the demo, but do not create containers from templates with scripts." "" "$ssh_log" ;;
      esac
    else
      echo "The demo SSH node did not start (see $ssh_log): service checks and provisioning will report SSH errors."
      part_status ssh failed "The demo SSH node did not start, so service checks and provisioning report SSH errors." "" "$ssh_log"
    fi
  fi
  echo "Set PROXBOARD_PVE_HOST (and a token) to talk to your real Proxmox instead."
  # A second simulated cluster beside the first, as Settings → Clusters adds one, with an SSH node of its own.
  lab_port=$($BIN/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  lab_token=$($BIN/python -c 'import secrets; print(secrets.token_hex(16))')
  lab_log=instance/pvesim-lab.log
  [ -n "${FRESH:-}" ] && rm -rf instance/pvesim-lab-state.json instance/demo-ssh-lab/containers
  PVESIM_TOKEN="root@pam!proxboard=$lab_token" $BIN/python -m tests.pvesim --port "$lab_port" --nodes 2 --containers 8 \
    --cluster-name lab --node-prefix lab --state instance/pvesim-lab-state.json >"$lab_log" 2>&1 &
  lab_pid=$!
  children+=($lab_pid)
  for _ in $(seq 50); do grep -q "CA certificate:" "$lab_log" 2>/dev/null && break; sleep 0.1; done
  lab_ca=$(sed -n 's/^CA certificate: //p' "$lab_log")
  if [ -n "$lab_ca" ]; then
    part_status simulator-lab running "The second simulated cluster (lab)" "$lab_pid" "$lab_log"
  else
    part_status simulator-lab failed "The second simulated cluster (lab) did not start." "" "$lab_log"
  fi
  # Its SSH node accepts the demo node's key (a cluster without an SSH password uses the default cluster's)
  # and its host key joins the demo's known_hosts, which the demo node rewrote on starting above.
  lab_ssh_log=instance/sshsim-lab.log
  if [ -n "$lab_ca" ] && [ -n "${ssh_port:-}" ]; then
    $BIN/python -m tests.sshsim --workdir instance/demo-ssh-lab --pve-admin "https://127.0.0.1:$lab_port/_sim" \
      --pve-ca "$lab_ca" --client-key "$PROXBOARD_SSH_KEY_FILE" >"$lab_ssh_log" 2>&1 &
    lab_ssh_pid=$!
    children+=($lab_ssh_pid)
    for _ in $(seq 100); do
      grep -q "known hosts:" "$lab_ssh_log" 2>/dev/null || ! kill -0 "$lab_ssh_pid" 2>/dev/null && break; sleep 0.1
    done
    lab_ssh_port=$(sed -n 's/^sshsim listening on 127.0.0.1://p' "$lab_ssh_log")
    lab_known_hosts=$(sed -n 's/^known hosts: //p' "$lab_ssh_log")
    if [ -n "$lab_ssh_port" ] && [ -f "$lab_known_hosts" ]; then
      while IFS= read -r line; do
        grep -qxF "$line" "$PROXBOARD_SSH_KNOWN_HOSTS" || printf '%s\n' "$line" >>"$PROXBOARD_SSH_KNOWN_HOSTS"
      done <"$lab_known_hosts"
      echo "The lab cluster's nodes answer SSH on 127.0.0.1:$lab_ssh_port."
      part_status ssh-lab running "The lab cluster's SSH node" "$lab_ssh_pid" "$lab_ssh_log"
    else
      lab_ssh_port=
      echo "The lab cluster's SSH node did not start (see $lab_ssh_log): its containers will report SSH errors."
      part_status ssh-lab failed "The lab cluster's SSH node did not start, so its service checks and provisioning report SSH errors." "" "$lab_ssh_log"
    fi
  elif [ -n "$lab_ca" ] && [ -z "${PROXBOARD_SSH_KEY_FILE:-}" ]; then
    part_status ssh-lab failed "The lab cluster's SSH node is not running (it needs the demo SSH node), so its service checks and provisioning report SSH errors."
  fi
fi

$BIN/flask db upgrade
if [ -n "${lab_ca:-}" ]; then
  echo "$lab_token" | $BIN/flask clusters add lab --host 127.0.0.1 --port "$lab_port" --token-id 'root@pam!proxboard' \
    --secret-stdin --verify-ssl "$lab_ca" --ssh-port "${lab_ssh_port:-22}" --update --no-check >/dev/null \
    && echo "Demo mode: a second simulated cluster, lab (2 nodes), runs at https://127.0.0.1:$lab_port"
fi
if $BIN/flask templates --help >/dev/null 2>&1; then
  $BIN/flask templates seed --if-empty || true
fi
if $BIN/flask worker --help >/dev/null 2>&1; then
  $BIN/flask worker >instance/worker.log 2>&1 &
  children+=($!)
  part_status worker running "The job worker" "$!" instance/worker.log
fi
echo
$BIN/flask users ensure-admin
echo "Proxboard: http://$HOST:$PORT"
$BIN/flask run --host "$HOST" --port "$PORT" --with-threads
