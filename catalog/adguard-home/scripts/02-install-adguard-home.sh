# Install AdGuard Home from AdGuard's release archive as a systemd service.
log_step "Downloading AdGuard Home"
apt_install ca-certificates curl tar
case "$(dpkg --print-architecture)" in
  amd64) AGH_ARCH=amd64 ;;
  arm64) AGH_ARCH=arm64 ;;
  armhf) AGH_ARCH=armv7 ;;
  i386) AGH_ARCH=386 ;;
  *) log_error "AdGuard Home has no build for $(dpkg --print-architecture)"; exit 1 ;;
esac
curl -fsSL "https://static.adguard.com/adguardhome/release/AdGuardHome_linux_${AGH_ARCH}.tar.gz" -o /tmp/AdGuardHome.tar.gz
tar -C /opt -xzf /tmp/AdGuardHome.tar.gz
rm -f /tmp/AdGuardHome.tar.gz
if [ ! -f /etc/systemd/system/AdGuardHome.service ]; then
  log_step "Installing the service"
  /opt/AdGuardHome/AdGuardHome -s install
fi
systemctl enable AdGuardHome
