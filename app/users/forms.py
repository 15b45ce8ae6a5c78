"""Forms of the Users page: create a user, set a role, require a second factor.

Names and roles are checked again by ``services`` (the command line uses them too); these forms catch what
a browser can send wrong before that, with the same sentences.
"""
from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, RadioField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import AnyOf, DataRequired, Length

from app.forms import QueryForm, fits, strip
from app.models import ROLES, User

ROLE_CHOICES = [SelectChoice(role, role.capitalize()) for role in ROLES]
ROLE_HELP = {
    "viewer": "sees everything; no actions, no credentials",
    "operator": "starts, stops and creates containers, reveals credentials",
    "admin": "everything, including templates, users and deleting containers",
}
UNKNOWN_ROLE = f"Choose one of the roles: {', '.join(ROLES)}."


class CreateUserForm(FlaskForm):
    """A name, a role, and a password (empty: one is generated and shown once)."""

    username = StringField("Username", filters=[strip], validators=[
        DataRequired("Username must not be empty."), fits(User.username)])
    role = SelectField("Role", choices=ROLE_CHOICES, default="viewer", validate_choice=False,
                       validators=[AnyOf(ROLES, message=UNKNOWN_ROLE)])
    password = PasswordField("Initial password", validators=[Length(max=1024)])  # length rule: auth.services


class RoleForm(FlaskForm):
    """The role select of a user's page; ``confirm`` is set by the page asking whether to demote oneself."""

    role = SelectField("Role", choices=ROLE_CHOICES, validate_choice=False,
                       validators=[AnyOf(ROLES, message=UNKNOWN_ROLE)])
    confirm = BooleanField()


class RoleQuery(QueryForm):
    """``?role=``: the role one's own page asks to confirm before anything is sent (a GET changes nothing)."""

    role = StringField()


class Require2faForm(FlaskForm):
    """The Require / Do not require buttons (each submits its own value)."""

    required = RadioField("Second factor", choices=("on", "off"),
                          validators=[DataRequired()])
