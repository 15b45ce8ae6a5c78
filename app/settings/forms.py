"""Forms of the Clusters settings page: add a cluster, change one.

The rules (name, host, token id, certificate check, SSH hosts) are ``app.clusters.services``'s, which the
command line uses too; these forms catch only what a browser can send wrong before that (an empty field, a
port that is not a number in range). Secrets are password fields: never rendered back into the page.
"""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import IntegerField, PasswordField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange

from app.clusters.services import ClusterSettings
from app.forms import fits, strip
from app.models import Cluster

SECRET_LENGTH = 1024  # far above a token's UUID; the column holds the encrypted text


def port_field(label: str, default: int, what: str) -> IntegerField:
    """A required port number, 1 to 65535, refused with the sentence the service uses."""
    message = f"The {what} is a number from 1 to 65535."
    return IntegerField(label, default=default, validators=[InputRequired(message), NumberRange(1, 65_535, message)])


class ClusterForm(FlaskForm):
    """A cluster's connection settings; ``settings()`` hands them to the service. A secret left empty is None
    (on an update: keep the stored one)."""

    host = StringField("Proxmox host", filters=[strip], validators=[
        DataRequired("Give the host name or IP address of a Proxmox node."), fits(Cluster.host)])
    port = port_field("API port", 8006, "Proxmox port")
    token_id = StringField("API token id", filters=[strip], validators=[
        DataRequired("Give the API token id (user@realm!tokenname)."), fits(Cluster.token_id)])
    token_secret = PasswordField("API token secret", validators=[Length(max=SECRET_LENGTH)])
    verify_ssl = StringField("Certificate check", default="true", filters=[strip], validators=[
        DataRequired("Certificate check: “true”, “false” or the path of a CA bundle on this server."),
        fits(Cluster.verify_ssl)])
    ssh_user = StringField("SSH user", default="root", filters=[strip], validators=[fits(Cluster.ssh_user)])
    ssh_port = port_field("SSH port", 22, "SSH port")
    ssh_hosts = StringField("SSH hosts", filters=[strip], validators=[fits(Cluster.ssh_hosts)])
    ssh_password = PasswordField("SSH password", validators=[Length(max=SECRET_LENGTH)])

    def settings(self) -> ClusterSettings:
        """The submitted settings, as ``app.clusters.services`` takes them."""
        return ClusterSettings(
            host=self.host.data, port=self.port.data, token_id=self.token_id.data,
            token_secret=self.token_secret.data or None, verify_ssl=self.verify_ssl.data,
            ssh_user=self.ssh_user.data, ssh_port=self.ssh_port.data, ssh_hosts=self.ssh_hosts.data or "",
            ssh_password=self.ssh_password.data or None)


class AddClusterForm(ClusterForm):
    """A new cluster: its name and secret too."""

    name = StringField("Name", filters=[strip], validators=[DataRequired("Give the cluster a name."),
                                                            fits(Cluster.name)])
    token_secret = PasswordField("API token secret", validators=[
        DataRequired("Give the API token's secret."), Length(max=SECRET_LENGTH)])
