# Install nginx and serve /var/www/html with the Proxboard site instead of Debian's default.
log_step "Installing nginx"
apt_install nginx
log_step "Enabling the site"
rm -f /etc/nginx/sites-enabled/default
ln -sf /etc/nginx/sites-available/proxboard /etc/nginx/sites-enabled/proxboard
nginx -t
systemctl enable nginx
systemctl reload-or-restart nginx
log_info "nginx serves /var/www/html on port 80"
