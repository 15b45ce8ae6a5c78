"""Sign-in (both steps), password, two-factor, passkey and theme forms."""
from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, RadioField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, Optional

from app.models import THEMES


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=80)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    next = HiddenField()


class ChangePasswordForm(FlaskForm):
    """The current password, then the new one twice."""

    current_password = PasswordField("Current password", validators=[DataRequired(), Length(max=1024)])
    new_password = PasswordField("New password", validators=[DataRequired(), Length(max=1024)])  # length rule: services
    confirm_password = PasswordField("New password again", validators=[
        DataRequired(), EqualTo("new_password", message="The two new passwords do not match.")])


class ThemeForm(FlaskForm):
    """The user menu's Auto / Light / Dark buttons (each submits its own value)."""

    theme = RadioField("Theme", choices=THEMES)
    next = HiddenField()


class SecondStepForm(FlaskForm):
    """The second step of a sign-in: a code from the authenticator app, or a recovery code."""

    code = StringField("Authentication code", validators=[DataRequired(message="Enter a code."), Length(max=64)])


class ConfirmTotpForm(FlaskForm):
    """The first code of a new authenticator app, which turns it on."""

    code = StringField("Code from the app", validators=[DataRequired(message="Enter the code the app shows."),
                                                        Length(max=64)])


class DisableTotpForm(FlaskForm):
    """Turning the authenticator app off: proven by the current password or a code."""

    current_password = PasswordField("Current password", validators=[Optional(), Length(max=1024)])
    code = StringField("Or a code from the app (or a recovery code)", validators=[Optional(), Length(max=64)])

    def validate(self, extra_validators=None) -> bool:
        """Valid when at least one of the two proofs is given."""
        if not super().validate(extra_validators):
            return False
        if not (self.current_password.data or self.code.data):
            self.current_password.errors.append("Enter your current password or a code.")
            return False
        return True


class PasskeyRegisterForm(FlaskForm):
    """A new passkey: its name, and the browser's answer (filled in by static/js/passkeys.js)."""

    name = StringField("Name", validators=[Length(max=80, message="At most %(max)d characters.")],
                       filters=[lambda value: value.strip() if isinstance(value, str) else value])
    credential = HiddenField(validators=[Length(max=65536)])


class PasskeySignInForm(FlaskForm):
    """A passkey's answer to a sign-in challenge (filled in by static/js/passkeys.js)."""

    credential = HiddenField(validators=[Length(max=65536)])
    next = HiddenField()


class RenamePasskeyForm(FlaskForm):
    """A passkey's new name."""

    name = StringField("Name", validators=[DataRequired(message="Give the passkey a name."),
                                           Length(max=80, message="At most %(max)d characters.")])
