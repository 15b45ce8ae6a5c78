# Create the "admin" role and database with a generated password, saved for Proxboard.
log_step "Creating the admin role"
cd /tmp
DB_USER=admin
DB_PASSWORD=$(gen_password 32)
runuser -u postgres -- psql -v ON_ERROR_STOP=1 -q <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${DB_USER}') THEN
    CREATE ROLE ${DB_USER} LOGIN SUPERUSER;
  END IF;
END
\$\$;
ALTER ROLE ${DB_USER} PASSWORD '${DB_PASSWORD}';
SQL
if ! runuser -u postgres -- psql -tAc "SELECT 1 FROM pg_database WHERE datname = '${DB_USER}'" | grep -q 1; then
  runuser -u postgres -- createdb --owner="${DB_USER}" "${DB_USER}"
fi
save_credential postgresql USERNAME "${DB_USER}"
save_credential postgresql PASSWORD "${DB_PASSWORD}"
save_credential postgresql DATABASE "${DB_USER}"
save_credential postgresql PORT 5432
log_info "Connect with: psql -h <container> -U ${DB_USER}"
