"""My account → API tokens: the signed-in user's tokens listed (prefix, role, expiry, last use, state), a new one
created and shown once in the answer (``Cache-Control: no-store``), one revoked after a confirmation page.

The rules (who may hold which role, expiry, hashing) are in ``tokens``; token requests never get here (every
``auth.`` endpoint refuses them, see ``tokens.sign_in_request``).
"""
from __future__ import annotations

from flask import abort, flash, g, make_response, redirect, render_template, url_for
from flask_wtf import FlaskForm
from wtforms import DateField, RadioField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Optional

from app.auth import bp
from app.auth.tokens import (EXPIRY_CHOICES, TokenError, TokenNotFound, create_token, effective_role, expiry_for,
                             get_token, list_tokens, revoke_token, role_rank, token_state)
from app.forms import fits, strip
from app.models import ROLES, ApiToken, User, utcnow


class TokenForm(FlaskForm):
    """A new token: its name, role (no higher than the owner's) and expiry."""

    name = StringField("Name", filters=[strip], validators=[
        DataRequired("Give the token a name, e.g. the script that will use it."), fits(ApiToken.name)])
    role = SelectField("Role", validate_choice=False)  # the service refuses a role above the owner's, in words
    expiry = RadioField("Expires", choices=[SelectChoice(value, label) for value, label in EXPIRY_CHOICES.items()],
                        default="90")
    expires_on = DateField("Expiry date", validators=[Optional()])

    def offer_roles(self, user: User) -> TokenForm:
        """Offer ``user``'s role and the ones below it, theirs chosen unless the form says otherwise."""
        self.role.choices = [SelectChoice(role, role.capitalize()) for role in ROLES[:role_rank(user.role) + 1]]
        if not self.role.data:
            self.role.data = user.role
        return self


def _tokens_page(form: TokenForm):
    now = utcnow()
    rows = [(token, token_state(token, now), effective_role(token)) for token in list_tokens(g.user)]
    return render_template("auth/tokens.html", form=form, rows=rows, now=now)


@bp.get("/account/tokens")
def tokens():
    """The signed-in user's API tokens (prefix, role, expiry, last use, state) and the form for a new one."""
    return _tokens_page(TokenForm().offer_roles(g.user))


@bp.post("/account/tokens", endpoint="create_token")
def create_token_view():
    """Create a token and show it once, in this answer (``Cache-Control: no-store``); the form again when
    something is wrong (nothing created)."""
    form = TokenForm().offer_roles(g.user)
    if form.validate_on_submit():
        try:
            expires_at = expiry_for(form.expiry.data, form.expires_on.data)
            token, secret = create_token(g.user, form.name.data, form.role.data, expires_at)
        except TokenError as exc:
            form[exc.field].errors.append(str(exc))
        else:
            response = make_response(render_template("auth/tokens_created.html", token=token, secret=secret), 201)
            response.headers["Cache-Control"] = "no-store"
            return response
    return _tokens_page(form)


@bp.get("/account/tokens/<int:token_id>/revoke", endpoint="confirm_revoke_token")
def confirm_revoke_token(token_id: int):
    """Ask before revoking one of the user's tokens (:raise 404: when it is not theirs)."""
    try:
        token = get_token(g.user, token_id)
    except TokenNotFound:
        abort(404)
    return render_template("auth/tokens_revoke.html", token=token, state=token_state(token))


@bp.post("/account/tokens/<int:token_id>/revoke", endpoint="revoke_token")
def revoke_token_view(token_id: int):
    """Revoke one of the user's tokens (:raise 404: when it is not theirs): scripts using it get 401 at once."""
    try:
        token = revoke_token(g.user, token_id)
    except TokenNotFound:
        abort(404)
    flash(f"The token “{token.name}” is revoked; scripts using it are refused from now on.", "success")
    return redirect(url_for("auth.tokens"))
