# Answer the first-run wizard through its API: web UI on port 80, DNS on 53, a generated admin password.
if [ -f /opt/AdGuardHome/AdGuardHome.yaml ]; then
  log_info "AdGuard Home is already configured; leaving it as it is"
  exit 0
fi
log_step "Configuring AdGuard Home"
for _ in $(seq 1 60); do
  curl -fsS -o /dev/null http://127.0.0.1:3000/control/install/get_addresses && break
  sleep 1
done
ADMIN_PASSWORD=$(gen_password 24)
curl -fsS -X POST http://127.0.0.1:3000/control/install/configure \
  -H 'Content-Type: application/json' \
  --data-binary @- <<EOF
{"web": {"ip": "0.0.0.0", "port": 80}, "dns": {"ip": "0.0.0.0", "port": 53}, "username": "admin", "password": "${ADMIN_PASSWORD}"}
EOF
save_credential adguardhome USERNAME admin
save_credential adguardhome PASSWORD "${ADMIN_PASSWORD}"
log_info "AdGuard Home answers DNS on port 53; admin UI on port 80"
