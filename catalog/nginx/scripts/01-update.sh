# Bring the container's packages up to date before anything else is installed.
log_step "Updating the system"
detect_os
log_info "Detected ${OS_ID} ${OS_VERSION} (${OS_CODENAME})"
wait_for_apt
apt-get update -q
apt-get -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold full-upgrade
apt-get -y -q autoremove
log_info "System is up to date"
