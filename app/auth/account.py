"""My account: the signed-in user's two-factor sign-in (authenticator app, recovery codes, passkeys), with links
to their password, sessions and API tokens. Every role may use these pages: they concern only the user."""
from __future__ import annotations

from flask import abort, current_app, flash, g, redirect, render_template, url_for

from app.auth import bp, passkeys, pending, twofactor
from app.auth.forms import ConfirmTotpForm, DisableTotpForm, PasskeyRegisterForm, RenamePasskeyForm
from app.auth.second_step import show_recovery_codes


@bp.get("/account")
def account():
    """The account page: password, two-factor status, passkeys, sessions and API tokens."""
    user = g.user
    return render_template(
        "auth/account.html", totp=twofactor.totp_enabled(user), totp_pending=twofactor.pending_totp_secret(user)
        is not None, recovery_left=twofactor.recovery_codes_left(user), passkey_list=passkeys.list_passkeys(user),
        required=twofactor.second_factor_required(user), passkey_form=PasskeyRegisterForm(),
        has_tokens="auth.tokens" in current_app.view_functions)


@bp.post("/account/2fa/totp")
def totp_start():
    """Make a new authenticator secret and show it (QR code and text) with the form for its first code."""
    try:
        twofactor.start_totp(g.user)
    except ValueError as exc:
        flash(str(exc), "error")
        return redirect(url_for("auth.account"))
    return redirect(url_for("auth.totp_setup"))


@bp.route("/account/2fa/totp/setup", methods=["GET", "POST"])
def totp_setup():
    """The secret awaiting its first code; a right code turns it on and shows the recovery codes once."""
    form = ConfirmTotpForm()
    secret = twofactor.pending_totp_secret(g.user)
    if secret is None:
        return redirect(url_for("auth.account"))
    if form.validate_on_submit():
        try:
            codes = twofactor.confirm_totp(g.user, form.code.data)
        except twofactor.InvalidCode as exc:
            form.code.errors.append(str(exc))
        else:
            flash("Two-factor sign-in is on: your next sign-in asks for a code from the app.", "success")
            return show_recovery_codes(codes, g.user.username, url_for("auth.account"), first=True)
    uri = twofactor.provisioning_uri(g.user, secret)
    return render_template("auth/twofactor_setup.html", form=form, secret=secret,
                           qr=twofactor.qr_code_data_uri(uri))


@bp.route("/account/2fa/totp/disable", methods=["GET", "POST"])
def totp_disable():
    """Turn the authenticator app off, proven by the current password or a code."""
    if not twofactor.totp_enabled(g.user):
        return redirect(url_for("auth.account"))
    form = DisableTotpForm()
    if form.validate_on_submit():
        try:
            twofactor.disable_totp(g.user, password=form.current_password.data, code=form.code.data)
        except twofactor.InvalidCode as exc:
            form.current_password.errors.append(str(exc))
        except twofactor.SecondFactorStillRequired as exc:
            flash(str(exc), "error")
            return redirect(url_for("auth.account"))
        else:
            flash("The authenticator app is turned off.", "success")
            return redirect(url_for("auth.account"))
    return render_template("auth/twofactor_disable.html", form=form)


@bp.post("/account/2fa/totp/cancel")
def totp_cancel():
    """Drop an authenticator secret that was never confirmed."""
    twofactor.discard_pending_totp(g.user)
    return redirect(url_for("auth.account"))


@bp.post("/account/2fa/recovery-codes")
def recovery_codes():
    """Replace the recovery codes with new ones, shown once; the old ones stop working."""
    try:
        codes = twofactor.regenerate_recovery_codes(g.user)
    except ValueError as exc:
        flash(str(exc), "error")
        return redirect(url_for("auth.account"))
    return show_recovery_codes(codes, g.user.username, url_for("auth.account"))


@bp.post("/account/passkeys/options")
def passkey_options():
    """The WebAuthn creation options (JSON) for a new passkey of the signed-in user."""
    options, challenge = passkeys.registration_options(g.user, passkeys.relying_party())
    pending.keep_challenge("register", challenge)
    response = current_app.response_class(options, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/account/passkeys")
def passkey_register():
    """Store the passkey the browser just made; the first second factor also gets recovery codes (shown once)."""
    form = PasskeyRegisterForm()
    if not form.validate_on_submit():
        flash(" ".join(form.name.errors) or "The form expired. Please try again.", "error")
    elif not form.credential.data:
        flash("Registering a passkey needs JavaScript in this browser.", "error")
    else:
        try:
            passkey = passkeys.register(g.user, form.name.data, form.credential.data,
                                        pending.take_challenge("register"), passkeys.relying_party())
        except passkeys.PasskeyError as exc:
            flash(str(exc), "error")
        else:
            flash(f"Passkey “{passkey.name}” added.", "success")
            if twofactor.recovery_codes_left(g.user) == 0:
                codes = twofactor.regenerate_recovery_codes(g.user)
                return show_recovery_codes(codes, g.user.username, url_for("auth.account"), first=True)
    return redirect(url_for("auth.account", _anchor="passkeys"))


@bp.post("/account/passkeys/<int:passkey_id>/rename")
def passkey_rename(passkey_id: int):
    """Rename one of the user's passkeys (:raise 404: when it is not theirs)."""
    form = RenamePasskeyForm()
    if form.validate_on_submit():
        try:
            passkeys.rename(g.user, passkey_id, form.name.data)
        except passkeys.PasskeyNotFound:
            abort(404)
        except ValueError as exc:
            flash(str(exc), "error")
        else:
            flash("Passkey renamed.", "success")
    else:
        flash(" ".join(form.name.errors) or "The form expired. Please try again.", "error")
    return redirect(url_for("auth.account", _anchor="passkeys"))


@bp.post("/account/passkeys/<int:passkey_id>/delete")
def passkey_delete(passkey_id: int):
    """Remove one of the user's passkeys (:raise 404: when it is not theirs)."""
    try:
        name = passkeys.delete(g.user, passkey_id)
    except passkeys.PasskeyNotFound:
        abort(404)
    except twofactor.SecondFactorStillRequired as exc:
        flash(str(exc), "error")
    else:
        flash(f"Passkey “{name}” removed.", "success")
    return redirect(url_for("auth.account", _anchor="passkeys"))
