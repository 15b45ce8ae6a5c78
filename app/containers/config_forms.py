"""The Config tab's forms: resources and options, one network interface, removing one.

The limits are the creation wizard's: Proxmox's own ranges (``app.forms.PVE_RANGES``) and the parameter checks
of ``container_templates.validators`` (tags, IPv4 address and gateway); each form carries the ``digest`` of the
config it was filled from, so a change made meanwhile elsewhere is refused instead of overwritten.
"""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (BooleanField, FloatField, HiddenField, IntegerField, RadioField, SelectField, StringField,
                     TextAreaField)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional, Regexp, ValidationError

from app.container_templates import validators as v
from app.container_templates.services import TAGS_HELP
from app.containers.config_services import Interface, Resources
from app.forms import INT32_MAX, pve_range, strip

DESCRIPTION_MAX = 8192  # the API's maxLength of ``description`` (8.4 and 9.1)
NET_NAME_RE = r"^[-_.\w]{1,15}$"  # the schema's pattern for a NIC name, within Linux's 15 characters


class CpuLimitField(FloatField):
    """A CPU limit shown as typed, or as Proxmox writes it (``0``, ``1.5``), not as ``0.0``."""

    def _value(self) -> str:
        if not self.raw_data and isinstance(self.data, float):
            return f"{self.data:g}"
        return super()._value()


class ResourcesForm(FlaskForm):
    """Cores, CPU limit, memory, swap, start on boot and startup order, tags, notes and three feature flags."""

    digest = HiddenField()
    cores = IntegerField("Cores", validators=[Optional(), pve_range("cores", "Between 1 and 8192.")],
                         description="Empty: all of the node's cores.")
    cpulimit = CpuLimitField("CPU limit", default=0, validators=[
        InputRequired("0 means no limit."), NumberRange(0, 8192, "From 0 (no limit) to 8192 CPUs.")],
        description="In CPUs of time; 0: no limit.")
    memory = IntegerField("Memory (MiB)", validators=[
        InputRequired("Give the memory."), pve_range("memory", "At least 16 MiB (and at most %(max)s).")])
    swap = IntegerField("Swap (MiB)", validators=[
        InputRequired("Give the swap (0 for none)."), pve_range("swap", "Cannot be negative (nor above %(max)s MiB).")])
    onboot = BooleanField("Start on boot")
    order = IntegerField("Order", validators=[Optional(), NumberRange(0, INT32_MAX, f"From 0 to {INT32_MAX}.")])
    up = IntegerField("Start delay (s)", validators=[Optional(), NumberRange(0, INT32_MAX, f"From 0 to {INT32_MAX} seconds.")])
    down = IntegerField("Stop timeout (s)", validators=[Optional(), NumberRange(0, INT32_MAX, f"From 0 to {INT32_MAX} seconds.")])
    tags = StringField("Tags", filters=[strip], validators=[Optional(), Length(max=255), v.proxmox_tags],
                       description=TAGS_HELP)
    notes = TextAreaField("Notes (Markdown)", validators=[
        Length(max=DESCRIPTION_MAX, message="At most %(max)d characters (Proxmox's limit).")])
    nesting = BooleanField("Nesting (containers or Docker inside)")
    keyctl = BooleanField("keyctl")
    fuse = BooleanField("FUSE")

    def values(self) -> Resources:
        """What the form asks for."""
        return Resources(cores=self.cores.data, cpulimit=self.cpulimit.data or 0, memory=self.memory.data,
                         swap=self.swap.data, onboot=bool(self.onboot.data), order=self.order.data, up=self.up.data,
                         down=self.down.data, tags=self.tags.data or "", notes=self.notes.data or "",
                         features={flag: bool(self[flag].data) for flag in ("nesting", "keyctl", "fuse")})


class InterfaceForm(FlaskForm):
    """One network interface: name, bridge, VLAN tag, IPv4 and IPv6 (static, DHCP, SLAAC or none), firewall."""

    digest = HiddenField()
    name = StringField("Name", default="eth0", filters=[strip], validators=[
        InputRequired("Give the interface a name, like eth1."),
        Regexp(NET_NAME_RE, message="Up to 15 letters, digits, “-”, “_” or “.”, like eth1.")])
    bridge = SelectField("Bridge", choices=[], validators=[InputRequired("Choose a bridge.")])
    tag = IntegerField("VLAN tag", validators=[Optional(), NumberRange(1, 4094, "A VLAN tag is from 1 to 4094.")],
                       description="Empty: untagged.")
    ip = RadioField("IPv4", default="dhcp", choices=[SelectChoice("dhcp", "DHCP"), SelectChoice("static", "Static"),
                                                     SelectChoice("manual", "None")])
    cidr = StringField("IPv4 address (CIDR)", filters=[strip])
    gateway = StringField("IPv4 gateway", filters=[strip])
    ip6 = RadioField("IPv6", default="manual", choices=[
        SelectChoice("auto", "SLAAC"), SelectChoice("dhcp", "DHCP"), SelectChoice("static", "Static"),
        SelectChoice("manual", "None")])
    cidr6 = StringField("IPv6 address (CIDR)", filters=[strip])
    gateway6 = StringField("IPv6 gateway", filters=[strip])
    firewall = BooleanField("Firewall")

    def validate_cidr(self, field) -> None:
        if self.ip.data == "static":
            if not field.data:
                raise ValidationError("A static address is required (like 192.168.1.50/24).")
            v.ipv4_cidr(self, field)

    def validate_gateway(self, field) -> None:
        if self.ip.data == "static" and field.data and not self.cidr.errors:  # no second message for one mistake
            v.gateway_in("cidr")(self, field)

    def validate_cidr6(self, field) -> None:
        if self.ip6.data == "static":
            if not field.data:
                raise ValidationError("A static address is required (like 2001:db8::10/64).")
            v.ipv6_cidr(self, field)

    def validate_gateway6(self, field) -> None:
        if self.ip6.data == "static" and field.data and not self.cidr6.errors:
            v.gateway6_in("cidr6")(self, field)

    def values(self) -> Interface:
        """What the form asks for."""
        return Interface(name=self.name.data, bridge=self.bridge.data, tag=self.tag.data, ip=self.ip.data,
                         cidr=self.cidr.data or "", gateway=self.gateway.data or "", ip6=self.ip6.data,
                         cidr6=self.cidr6.data or "", gateway6=self.gateway6.data or "",
                         firewall=bool(self.firewall.data))


class RemoveInterfaceForm(FlaskForm):
    """Remove a network interface (the digest it was confirmed against)."""

    digest = HiddenField()
