# proxboard-lib.sh: loaded before every template script Proxboard runs inside a container.
# Log lines look like "::proxboard::<level>::<message>"; the provisioning job turns them into events.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PROXBOARD_CREDENTIALS_DIR="${PROXBOARD_CREDENTIALS_DIR:-/etc/proxboard/credentials}"

_proxboard_log() {
  local level=$1
  shift
  printf '::proxboard::%s::%s\n' "$level" "$*"
}
log_info() { _proxboard_log info "$@"; }
log_warn() { _proxboard_log warn "$@"; }
log_error() { _proxboard_log error "$@"; }
log_step() { _proxboard_log step "$@"; }

# Report the failing line before set -e ends the script, numbered as in the template's own script
# (PROXBOARD_LINE_OFFSET: the lines this library and its header add in front of it).
_proxboard_failed() {
  local status=$1 line=$(($2 - ${PROXBOARD_LINE_OFFSET:-0}))
  if [ "$line" -gt 0 ]; then
    log_error "command failed (exit $status) at line $line: $3"
  else
    log_error "command failed (exit $status) in proxboard-lib.sh at line $2: $3"
  fi
}
trap '_proxboard_failed "$?" "$LINENO" "$BASH_COMMAND"' ERR

# wait_for_apt [seconds]: wait until no apt/dpkg process holds the package locks.
wait_for_apt() {
  local timeout=${1:-300} waited=0
  local locks=(/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock)
  while :; do
    if command -v fuser >/dev/null 2>&1; then
      fuser "${locks[@]}" >/dev/null 2>&1 || return 0
    elif command -v pgrep >/dev/null 2>&1; then
      pgrep -x 'apt|apt-get|dpkg|unattended-upgr' >/dev/null 2>&1 || return 0
    else
      return 0
    fi
    if [ "$waited" -ge "$timeout" ]; then
      log_error "apt is still locked after ${timeout}s"
      return 1
    fi
    [ "$waited" -eq 0 ] && log_info "Waiting for another package manager to finish"
    sleep 2
    waited=$((waited + 2))
  done
}

# apt_install PACKAGE...: install packages without prompts, refreshing the lists once per run.
apt_install() {
  wait_for_apt
  if [ -z "${_PROXBOARD_APT_UPDATED:-}" ]; then
    apt-get update -q
    _PROXBOARD_APT_UPDATED=1
  fi
  apt-get install -y -q --no-install-recommends "$@"
}

# system_upgrade: refresh the package lists and apply every upgrade, keeping changed config files.
system_upgrade() {
  detect_os
  log_info "Detected ${OS_ID} ${OS_VERSION} (${OS_CODENAME})"
  wait_for_apt
  apt-get update -q
  _PROXBOARD_APT_UPDATED=1
  apt-get -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold full-upgrade
  apt-get -y -q autoremove
}

# detect_os: set OS_ID (debian, ubuntu…), OS_VERSION (12, 24.04…) and OS_CODENAME from os-release.
detect_os() {
  local release=${PROXBOARD_OS_RELEASE:-/etc/os-release}
  if [ ! -r "$release" ]; then
    log_error "cannot read $release"
    return 1
  fi
  OS_ID=$(. "$release" && printf '%s' "${ID:-unknown}")
  OS_VERSION=$(. "$release" && printf '%s' "${VERSION_ID:-}")
  OS_CODENAME=$(. "$release" && printf '%s' "${VERSION_CODENAME:-}")
  export OS_ID OS_VERSION OS_CODENAME
}

# gen_password [length]: print a random alphanumeric password (default 24 characters).
gen_password() {
  local length=${1:-24} out=""
  while [ "${#out}" -lt "$length" ]; do
    out+=$(head -c 512 /dev/urandom | LC_ALL=C tr -dc 'A-Za-z0-9')
  done
  printf '%s\n' "${out:0:length}"
}

# save_credential SERVICE KEY VALUE: set KEY=VALUE in $PROXBOARD_CREDENTIALS_DIR/SERVICE (mode 600).
save_credential() {
  local service=$1 key=$2 value=$3
  if [[ ! $service =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]]; then
    log_error "save_credential: invalid service name '$service'"
    return 1
  fi
  if [[ ! $key =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
    log_error "save_credential: invalid key '$key'"
    return 1
  fi
  if [[ $value == *$'\n'* ]]; then
    log_error "save_credential: the value of $key spans several lines"
    return 1
  fi
  (
    umask 077
    mkdir -p "$PROXBOARD_CREDENTIALS_DIR"
    chmod 700 "$PROXBOARD_CREDENTIALS_DIR"
    local file="$PROXBOARD_CREDENTIALS_DIR/$service" tmp
    tmp=$(mktemp "$PROXBOARD_CREDENTIALS_DIR/.$service.XXXXXX")
    if [ -f "$file" ]; then
      grep -v "^${key}=" "$file" >"$tmp" || true
    fi
    printf '%s=%s\n' "$key" "$value" >>"$tmp"
    chmod 600 "$tmp"
    mv -f "$tmp" "$file"
  )
  log_info "Saved credential $key for $service"
}
