"""WTForms validators mirroring Proxmox's own parameter rules (pve-api NOTES §4 and §7), shared by the creation
wizard and the container page's Config tab."""
from __future__ import annotations

import ipaddress
import re

from cryptography.hazmat.primitives.serialization import load_ssh_public_key
from wtforms.validators import ValidationError

from app.container_templates.services import TAG_RE, split_tags

DNS_LABEL_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$")


def dns_name(form, field) -> None:
    """A DNS name: dot-separated labels of letters, digits and inner hyphens, 63 chars each."""
    value = (field.data or "").strip()
    if len(value) > 255:
        raise ValidationError("A hostname is at most 255 characters.")
    for label in value.split("."):
        if len(label) > 63:
            raise ValidationError(f"“{label[:20]}…” is longer than 63 characters; each part of a hostname must be shorter.")
        if not DNS_LABEL_RE.match(label):
            raise ValidationError("Use letters, digits and hyphens (not at the start or end of a part), separated by dots.")


def proxmox_tags(form, field) -> None:
    """Tags as Proxmox accepts them: ``[a-z0-9_][a-z0-9_\\-+.]*`` each."""
    bad = [tag for tag in split_tags(field.data) if not TAG_RE.match(tag)]
    if bad:
        raise ValidationError(f"Not a valid tag: {', '.join(bad)} (letters, digits, _ - + . ; not starting with - + .).")


def ssh_public_keys(form, field) -> None:
    """Every non-empty line must be an OpenSSH public key."""
    for number, line in enumerate((field.data or "").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            load_ssh_public_key(line.encode())
        except (ValueError, TypeError):
            raise ValidationError(f"Line {number} is not an OpenSSH public key (like “ssh-ed25519 AAAA… me@host”).") from None
        except Exception:  # unsupported key types raise UnsupportedAlgorithm
            raise ValidationError(f"Line {number}: this key type is not supported.") from None


def ipv4_cidr(form, field) -> None:
    """A host address with its prefix length, like 192.168.1.50/24."""
    value = (field.data or "").strip()
    if "/" not in value:
        raise ValidationError("Give the address with its prefix length, like 192.168.1.50/24.")
    try:
        interface = ipaddress.IPv4Interface(value)
    except ValueError:
        raise ValidationError("Not a valid IPv4 address with prefix length (like 192.168.1.50/24).") from None
    if interface.network.prefixlen < 32 and interface.ip in (interface.network.network_address,
                                                             interface.network.broadcast_address):
        raise ValidationError("That is the network or broadcast address, not a host address.")


def gateway_in(cidr_field: str):
    """The gateway must be an IPv4 address inside the network of ``cidr_field``."""

    def check(form, field) -> None:
        value = (field.data or "").strip()
        try:
            gateway = ipaddress.IPv4Address(value)
        except ValueError:
            raise ValidationError("Not a valid IPv4 address.") from None
        try:
            interface = ipaddress.IPv4Interface((form[cidr_field].data or "").strip())
        except ValueError:
            return  # the address field reports its own error
        if gateway not in interface.network:
            raise ValidationError(f"The gateway must be inside {interface.network}.")
        if gateway == interface.ip:
            raise ValidationError("The gateway cannot be the container's own address.")

    return check


def ip_address(form, field) -> None:
    """An IPv4 or IPv6 address (for the nameserver)."""
    for part in re.split(r"[\s,;]+", (field.data or "").strip()):
        if not part:
            continue
        try:
            ipaddress.ip_address(part)
        except ValueError:
            raise ValidationError(f"“{part}” is not an IP address.") from None


def ipv6_cidr(form, field) -> None:
    """An IPv6 host address with its prefix length, like 2001:db8::10/64."""
    value = (field.data or "").strip()
    if "/" not in value:
        raise ValidationError("Give the address with its prefix length, like 2001:db8::10/64.")
    try:
        ipaddress.IPv6Interface(value)
    except ValueError:
        raise ValidationError("Not a valid IPv6 address with prefix length (like 2001:db8::10/64).") from None


def gateway6_in(cidr_field: str):
    """The gateway must be an IPv6 address, other than the container's own (a link-local one is fine)."""

    def check(form, field) -> None:
        try:
            gateway = ipaddress.IPv6Address((field.data or "").strip())
        except ValueError:
            raise ValidationError("Not a valid IPv6 address.") from None
        try:
            interface = ipaddress.IPv6Interface((form[cidr_field].data or "").strip())
        except ValueError:
            return
        if gateway == interface.ip:
            raise ValidationError("The gateway cannot be the container's own address.")

    return check
