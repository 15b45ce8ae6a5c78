# Install security updates automatically every day.
log_step "Enabling automatic security updates"
apt_install unattended-upgrades
cat >/etc/apt/apt.conf.d/20auto-upgrades <<'EOF'
APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "1";
EOF
systemctl enable --now unattended-upgrades.service
log_info "Automatic security updates are on"
