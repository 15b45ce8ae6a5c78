# Listen on port 8080 with password authentication, as a systemd service.
log_step "Configuring code-server"
CODE_USER=coder
CONFIG_DIR=/home/${CODE_USER}/.config/code-server
install -d -o "${CODE_USER}" -g "${CODE_USER}" -m 0700 "/home/${CODE_USER}/.config" "${CONFIG_DIR}"
PASSWORD=$(gen_password 24)
umask 077
cat >"${CONFIG_DIR}/config.yaml" <<EOF
bind-addr: 0.0.0.0:8080
auth: password
password: ${PASSWORD}
cert: false
EOF
chown "${CODE_USER}:${CODE_USER}" "${CONFIG_DIR}/config.yaml"
cat >/etc/systemd/system/code-server@.service <<'EOF'
[Unit]
Description=code-server for %i
After=network.target

[Service]
Type=exec
User=%i
WorkingDirectory=~
ExecStart=/usr/local/bin/code-server
Restart=always

[Install]
WantedBy=default.target
EOF
systemctl daemon-reload
systemctl enable --now "code-server@${CODE_USER}"
save_credential code-server USERNAME "${CODE_USER}"
save_credential code-server PASSWORD "${PASSWORD}"
log_info "code-server listens on port 8080"
