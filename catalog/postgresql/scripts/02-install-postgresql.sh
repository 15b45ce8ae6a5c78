# Install PostgreSQL from Debian and let clients on the network log in with a password.
log_step "Installing PostgreSQL"
apt_install postgresql
PG_VERSION=$(ls /etc/postgresql | sort -V | tail -n 1)
PG_CONF=/etc/postgresql/${PG_VERSION}/main
log_info "PostgreSQL ${PG_VERSION}"
log_step "Listening on the network"
sed -i "s/^#\?listen_addresses[[:space:]]*=.*/listen_addresses = '*'/" "${PG_CONF}/postgresql.conf"
if ! grep -q '^# proxboard' "${PG_CONF}/pg_hba.conf"; then
  cat >>"${PG_CONF}/pg_hba.conf" <<'EOF'
# proxboard: password logins from the network (narrow the address range if you can)
host    all    all    0.0.0.0/0    scram-sha-256
host    all    all    ::/0         scram-sha-256
EOF
fi
systemctl enable postgresql
systemctl restart postgresql
