"""Sign-in and theme forms."""
from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, RadioField, StringField
from wtforms.validators import DataRequired, Length

from app.models import THEMES


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=80)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    next = HiddenField()


class ThemeForm(FlaskForm):
    """The user menu's Auto / Light / Dark buttons (each submits its own value)."""

    theme = RadioField("Theme", choices=THEMES)
    next = HiddenField()
