"""One WTForms form per wizard step; choices that depend on Proxmox are filled in by the view."""
from __future__ import annotations

import re

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import EqualTo, InputRequired, Length, Optional, ValidationError

from app.container_templates.services import TAGS_HELP, parse_package_text
from app.forms import MultiCheckboxField, QueryForm, column_length, pve_range, strip, truncate
from app.models import ContainerTemplate

from app.container_templates import validators as v


NODE_NAME_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?$")  # pve-node (PVE::JSONSchema)


class StepForm(FlaskForm):
    """Every step has Next and Back; Back saves what was typed without insisting it is valid."""

    next = SubmitField("Next")
    back = SubmitField("Back")


class TemplateForm(StepForm):
    template = RadioField("Template", choices=[], validate_choice=True,
                          validators=[InputRequired("Choose a template or start from scratch.")])


class ConfigureForm(StepForm):
    node = SelectField("Node", choices=[], validators=[InputRequired("Choose a node.")])
    change_node = SubmitField("Change node")
    ostemplate = SelectField("OS template", choices=[], validators=[InputRequired("Choose an OS template.")])
    hostname = StringField("Hostname", validators=[InputRequired("A hostname is required."), v.dns_name])
    vmid = IntegerField("VMID", validators=[
        InputRequired("A VMID is required."), pve_range("vmid", "Proxmox VMIDs go from %(min)s to %(max)s."),
    ])
    password = PasswordField("Root password", validators=[Optional(), Length(min=5, message="At least 5 characters.")])
    password_confirm = PasswordField("Confirm password", validators=[EqualTo("password", "The passwords differ.")])
    ssh_public_keys = TextAreaField("SSH public keys", validators=[Optional(), v.ssh_public_keys])
    cores = IntegerField("Cores", validators=[InputRequired(), pve_range("cores", "Between 1 and 8192.")])
    memory = IntegerField("Memory (MiB)", validators=[InputRequired(), pve_range("memory", "At least 16 MiB (and at most %(max)s).")])
    swap = IntegerField("Swap (MiB)", validators=[InputRequired(), pve_range("swap", "Cannot be negative (nor above %(max)s MiB).")])
    disk = IntegerField("Disk (GiB)", validators=[InputRequired(), pve_range("disk", "At least 1 GiB (and at most %(max)s).")])
    storage = SelectField("Storage", choices=[], validators=[InputRequired("Choose a storage.")])
    bridge = SelectField("Bridge", choices=[], validators=[InputRequired("Choose a bridge.")])
    ip_mode = RadioField("IPv4", choices=[SelectChoice("dhcp", "DHCP"), SelectChoice("static", "Static")], default="dhcp")
    ip_cidr = StringField("Address (CIDR)")
    gateway = StringField("Gateway")
    nameserver = StringField("Nameserver", validators=[Optional(), v.ip_address])
    unprivileged = BooleanField("Unprivileged container", default=True)
    nesting = BooleanField("Nesting")
    keyctl = BooleanField("keyctl")
    fuse = BooleanField("FUSE")
    onboot = BooleanField("Start on boot")
    tags = StringField("Tags", validators=[Optional(), Length(max=255), v.proxmox_tags], description=TAGS_HELP)

    def __init__(self, *args, has_password: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.has_password = has_password

    def validate_ip_cidr(self, field) -> None:
        if self.ip_mode.data == "static":
            if not (field.data or "").strip():
                raise ValidationError("A static address is required (like 192.168.1.50/24).")
            v.ipv4_cidr(self, field)

    def validate_gateway(self, field) -> None:
        if self.ip_mode.data == "static" and (field.data or "").strip():
            v.gateway_in("ip_cidr")(self, field)

    def validate(self, extra_validators=None) -> bool:
        """The field rules, then: a root password (new or stored) or an SSH key is required."""
        valid = super().validate(extra_validators)
        if not self.password.data and not self.has_password and not (self.ssh_public_keys.data or "").strip():
            self.ssh_public_keys.errors = [*self.ssh_public_keys.errors,
                                           "Set a root password or an SSH public key (or both)."]
            return False
        return valid


class PackagesForm(StepForm):
    groups = MultiCheckboxField("Package groups", choices=[])
    additional = TextAreaField("Additional packages")

    def validate_additional(self, field) -> None:
        _packages, errors = parse_package_text(field.data or "")
        if errors:
            raise ValidationError("; ".join(errors))


class ScriptsForm(StepForm):
    enabled = MultiCheckboxField("Run", choices=[], coerce=str)
    order = HiddenField()
    move = StringField()  # "<script id>:up" or ":down", sent by the arrow buttons


class CreateForm(FlaskForm):
    create = SubmitField("Create")
    draft_id = HiddenField()


class TemplateQuery(QueryForm):
    """``?q=&tag=`` of the template step: the search and tag filters."""

    q = StringField(filters=[strip, truncate(200)])
    tag = StringField(filters=[truncate(column_length(ContainerTemplate.tags))])  # more can match no template


def node_name(value):
    """A field filter: ``value`` if it is a Proxmox node name (format ``pve-node``), else None (as if absent).

    The name goes into Proxmox URL paths (``/nodes/{node}/storage``): ``../x`` would walk out of them.
    """
    return value if isinstance(value, str) and NODE_NAME_RE.match(value) else None


class NodeQuery(QueryForm):
    """``?node=`` (or the posted ``node``): the node whose templates, storages and bridges are offered."""

    node = StringField(filters=[node_name])
