"""What kind of service a unit is, what colour its status is, and where its web UI lives."""
from __future__ import annotations

import ipaddress

SYSTEM_UNITS = frozenset({
    "ssh", "sshd", "cron", "crond", "anacron", "atd", "dbus", "dbus-broker", "networking", "rsyslog", "syslog",
    "syslog-ng", "postfix", "exim4", "console-getty", "container-getty", "getty", "serial-getty", "chrony",
    "chronyd", "ntp", "ntpsec", "polkit", "unattended-upgrades", "apt-daily", "apt-daily-upgrade", "logrotate",
    "man-db", "dpkg-db-backup", "e2scrub_all", "e2scrub_reap", "fstrim", "emergency", "rescue", "user",
    "user-runtime-dir", "modprobe", "kmod-static-nodes", "keyboard-setup", "console-setup", "resolvconf",
    "networkd-dispatcher", "apparmor", "procps", "dhcpcd", "ifup", "ifupdown-pre", "ifupdown-wait-online",
    "auditd", "irqbalance", "lvm2-monitor", "nftables", "ufw", "snapd", "cloud-init", "cloud-config",
    "cloud-final", "cloud-init-local", "rc-local", "plymouth", "initrd-cleanup", "postfix-resolvconf",
    "pam_namespace", "e2scrub_fail",  # Debian 12 minbase one-shots (libpam-modules, e2fsprogs)
    # OpenRC (Alpine): the boot and sysinit runlevels and the usual base services
    "bootmisc", "hostname", "hwclock", "modules", "sysctl", "sysfs", "devfs", "dmesg", "mdev", "hwdrivers",
    "localmount", "netmount", "fsck", "root", "swap", "urandom", "seedrng", "killprocs", "savecache", "mount-ro",
    "procfs", "loopback", "machine-id", "cgroups", "termencoding", "keymaps", "local", "osclock", "swclock",
    "staticroute", "firstboot", "consolefont", "numlock", "binfmt", "agetty", "acpid", "klogd", "ntpd",
    "udev", "udev-trigger", "udev-settle", "udev-postmount", "modloop", "save-keymaps", "save-termencoding",
    "net-online", "mtab", "sshd-keygen",
})
SYSTEM_PREFIXES = ("systemd-", "getty-", "dbus-", "plymouth-", "initrd-", "ssh-", "apt-", "agetty.", "net.")
# OpenRC states as rc-status prints them (OpenRC's src/rc-status/rc-status.c)
OPENRC_STATUS = {
    "started": "running", "hotplugged": "running", "stopped": "stopped", "crashed": "failed", "failed": "failed",
    "starting": "activating", "stopping": "activating", "scheduled": "activating", "inactive": "activating",
    "unsupervised": "degraded",
}

STATUS_COLOURS = {
    "running": "green",
    "degraded": "yellow",
    "activating": "yellow",
    "unknown": "yellow",
    "failed": "red",
    "stopped": "red",
}
WEB_PORTS = {
    80: "http", 443: "https", 3000: "http", 5000: "http", 8000: "http", 8006: "https", 8080: "http",
    8081: "http", 8443: "https", 8888: "http", 9000: "http", 9090: "http", 9443: "https",
}


def base_name(name: str) -> str:
    """``getty@tty1`` → ``getty``: template units are classified and matched by their template."""
    return name.split("@", 1)[0]


def is_system_unit(name: str) -> bool:
    """True for services every Debian/Ubuntu/Alpine container runs regardless of what it is for."""
    base = base_name(name)
    return base in SYSTEM_UNITS or base.startswith(SYSTEM_PREFIXES)


def unit_status(active: str, sub: str) -> str:
    """Map systemd's ACTIVE/SUB states to Proxboard's status words."""
    if active == "active":
        return "running" if sub in ("running", "exited", "listening", "waiting") else "degraded"
    if active in ("activating", "reloading", "deactivating", "refreshing"):
        return "activating"
    if active == "failed":
        return "failed"
    if active == "inactive":
        return "stopped"
    return "unknown"


def openrc_status(state: str) -> str:
    """Map an OpenRC state word (``started``, ``crashed`` …) to Proxboard's status words."""
    return OPENRC_STATUS.get(state, "unknown")


def status_colour(status: str) -> str:
    """``green``, ``yellow`` or ``red`` for a Service.status (unknown words are yellow)."""
    return STATUS_COLOURS.get(status, "yellow")


def web_url(ip: str | None, port: int | None, scheme: str | None = None, path: str | None = None) -> str | None:
    """A link to a web UI at ``ip:port``; without a declared scheme only well-known web ports get one."""
    if not ip or not port:
        return None
    scheme = scheme or WEB_PORTS.get(port)
    if scheme not in ("http", "https"):
        return None
    try:
        host = f"[{ip}]" if ipaddress.ip_address(ip).version == 6 else ip
    except ValueError:
        host = ip
    default = {"http": 80, "https": 443}[scheme]
    netloc = host if port == default else f"{host}:{port}"
    path = path or "/"
    if not path.startswith("/"):
        path = "/" + path
    return f"{scheme}://{netloc}{path}"
