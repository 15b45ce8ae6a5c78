# Bring the container's packages up to date before anything else is installed.
log_step "Updating the system"
system_upgrade
log_info "System is up to date"
