# Keep the clock in UTC and make sure a UTF-8 locale exists (Debian's template ships none).
log_step "Setting time zone and locale"
timedatectl set-timezone UTC 2>/dev/null || ln -sf /usr/share/zoneinfo/UTC /etc/localtime
apt_install locales
sed -i 's/^# *en_US.UTF-8 UTF-8/en_US.UTF-8 UTF-8/' /etc/locale.gen
locale-gen
update-locale LANG=en_US.UTF-8
log_info "Time zone UTC, locale en_US.UTF-8"
