# Install Jellyfin (server, web client and its ffmpeg build) and start it.
log_step "Installing Jellyfin"
wait_for_apt
apt-get update -q
apt_install jellyfin
install -d -o jellyfin -g jellyfin /srv/media
systemctl enable --now jellyfin
log_info "Jellyfin listens on port 8096: create the admin account at http://<container>:8096/web"
log_info "Put media in /srv/media (or bind-mount a host folder there)"
