"""The second step of a sign-in (an authenticator code, a recovery code or a passkey), the enrolment a required
second factor forces before the first sign-in, and signing in with a passkey alone.

Every view here but the passkey-alone ones works only inside a pending sign-in (``pending``): without one, or
past its five minutes, it sends the browser back to the login form. A failed second step is audited
(``auth.sign_in`` failed, with its method) and counted by the login throttle under the pending account's name.
"""
from __future__ import annotations

from flask import current_app, flash, redirect, render_template, url_for

from app import audit
from app.auth import bp, passkeys, pending, throttle, twofactor
from app.auth.forms import ConfirmTotpForm, PasskeyRegisterForm, PasskeySignInForm, SecondStepForm
from app.auth.signin import finish_sign_in
from app.extensions import db
from app.models import utcnow


def _pending(*, enrol: bool = False) -> pending.PendingSignIn | None:
    """This browser's pending sign-in in the state the view expects (``enrol``), else None (with a message)."""
    try:
        found = pending.load()
    except pending.PendingExpired:
        flash("The sign-in took too long. Please sign in again.", "info")
        return None
    if found is None:
        return None
    return found if found.enrol == enrol else None


def _restart():
    return redirect(url_for("auth.login"))


def _failed(user, method: str) -> None:
    audit.record("auth.sign_in", outcome="failed", user=user, username=user.username if user else None,
                 detail={"method": method})
    db.session.commit()
    throttle.count_failure()


def _json(text: str):
    response = current_app.response_class(text, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


def show_recovery_codes(codes: list[str], username: str, continue_url: str, *, first: bool = False):
    """The one page that ever shows ``codes`` (not cached by the browser)."""
    response = current_app.make_response(render_template(
        "auth/twofactor_codes.html", codes=codes, username=username, continue_url=continue_url, first=first))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/login/verify", methods=["GET", "POST"])
def verify():
    """The second step: a code from the authenticator app or a recovery code, or (with JavaScript) a passkey."""
    found = _pending()
    if found is None:
        return _restart()
    user, form = found.user, SecondStepForm()
    if form.validate_on_submit():
        method = "totp" if twofactor.looks_like_totp(form.code.data) else "recovery_code"
        accepted = (twofactor.verify_totp(user, form.code.data) if method == "totp"
                    else twofactor.use_recovery_code(user, form.code.data))
        if accepted:
            if method == "recovery_code":
                left = twofactor.recovery_codes_left(user)
                flash(f"You used a recovery code: {left} left. Make new ones on My account when they run low.",
                      "warning" if left < 3 else "info")
            return redirect(finish_sign_in(user, method=method, next_url=found.next_url))
        _failed(user, method)
        form.code.errors.append("That code is not right, or it was already used." if method == "totp"
                                else "That recovery code is not right, or it was already used.")
    return render_template("auth/login_verify.html", form=form, pending_user=user,
                           totp=twofactor.totp_enabled(user), passkey_count=twofactor.passkey_count(user),
                           passkey_form=PasskeySignInForm())


@bp.post("/login/verify/passkey/options")
def verify_passkey_options():
    """The WebAuthn request options (JSON) for the pending user's passkeys; 409 without a pending sign-in."""
    found = _pending()
    if found is None:
        return _json('{"error": "The sign-in took too long. Please sign in again."}'), 409
    options, challenge = passkeys.authentication_options(passkeys.relying_party(), found.user)
    pending.keep_challenge("second_step", challenge)
    return _json(options)


@bp.post("/login/verify/passkey")
def verify_passkey():
    """The second step with a passkey of the pending user."""
    found = _pending()
    if found is None:
        return _restart()
    form = PasskeySignInForm()
    if form.validate_on_submit() and form.credential.data:
        try:
            passkeys.authenticate(form.credential.data, pending.take_challenge("second_step"),
                                  passkeys.relying_party(), found.user)
        except passkeys.PasskeyError as exc:
            _failed(found.user, "passkey")
            flash(str(exc), "error")
        else:
            return redirect(finish_sign_in(found.user, method="passkey", next_url=found.next_url))
    elif form.validate_on_submit():
        flash("Signing in with a passkey needs JavaScript in this browser. Use a code instead.", "error")
    return redirect(url_for("auth.verify"))


@bp.post("/login/passkey/options")
def passkey_sign_in_options():
    """The WebAuthn request options (JSON) for signing in with any passkey stored on the authenticator."""
    options, challenge = passkeys.authentication_options(passkeys.relying_party())
    pending.keep_challenge("sign_in", challenge)
    return _json(options)


@bp.post("/login/passkey")
def passkey_sign_in():
    """Sign in with a passkey alone (no name, no password): the passkey verified its user, two factors in one."""
    form = PasskeySignInForm()
    next_url = form.next.data or None
    if not form.validate_on_submit():
        return redirect(url_for("auth.login", next=next_url))
    if not form.credential.data:
        flash("Signing in with a passkey needs JavaScript in this browser.", "error")
        return redirect(url_for("auth.login", next=next_url))
    try:
        passkey = passkeys.authenticate(form.credential.data, pending.take_challenge("sign_in"),
                                        passkeys.relying_party())
    except passkeys.PasskeyError as exc:
        _failed(None, "passkey")
        flash(str(exc), "error")
        return redirect(url_for("auth.login", next=next_url))
    user = passkeys.owner(passkey)
    user.last_login_at = utcnow()
    return redirect(finish_sign_in(user, method="passkey", next_url=next_url))


@bp.route("/login/enrol", methods=["GET", "POST"])
def enrol():
    """Two-factor sign-in is required and the user has no second factor: set one up before the session opens
    (an authenticator app here; a passkey through ``enrol_passkey``)."""
    found = _pending(enrol=True)
    if found is None:
        return _restart()
    user, form = found.user, ConfirmTotpForm()
    secret = twofactor.pending_totp_secret(user)
    if secret is None:
        return _restart()
    if form.validate_on_submit():
        try:
            codes = twofactor.confirm_totp(user, form.code.data)
        except twofactor.InvalidCode as exc:
            form.code.errors.append(str(exc))
        else:
            target = finish_sign_in(user, method="totp", next_url=found.next_url)
            return show_recovery_codes(codes, user.username, target, first=True)
    uri = twofactor.provisioning_uri(user, secret)
    return render_template("auth/login_enrol.html", form=form, secret=secret, qr=twofactor.qr_code_data_uri(uri),
                           pending_user=user, passkey_form=PasskeyRegisterForm())


@bp.post("/login/enrol/passkey/options")
def enrol_passkey_options():
    """The WebAuthn creation options (JSON) for a first passkey during a required enrolment."""
    found = _pending(enrol=True)
    if found is None:
        return _json('{"error": "The sign-in took too long. Please sign in again."}'), 409
    options, challenge = passkeys.registration_options(found.user, passkeys.relying_party())
    pending.keep_challenge("enrol", challenge)
    return _json(options)


@bp.post("/login/enrol/passkey")
def enrol_passkey():
    """Register a first passkey during a required enrolment, then sign in (recovery codes shown once)."""
    found = _pending(enrol=True)
    if found is None:
        return _restart()
    form = PasskeyRegisterForm()
    if form.validate_on_submit() and form.credential.data:
        try:
            passkeys.register(found.user, form.name.data, form.credential.data, pending.take_challenge("enrol"),
                              passkeys.relying_party())
        except passkeys.PasskeyError as exc:
            flash(str(exc), "error")
        else:
            user = found.user
            twofactor.discard_pending_totp(user)
            codes = twofactor.regenerate_recovery_codes(user)
            target = finish_sign_in(user, method="passkey", next_url=found.next_url)
            return show_recovery_codes(codes, user.username, target, first=True)
    elif form.validate_on_submit():
        flash("Registering a passkey needs JavaScript in this browser. Use an authenticator app instead.", "error")
    return redirect(url_for("auth.enrol"))


@bp.post("/login/cancel")
def cancel_sign_in():
    """Forget the pending sign-in and go back to the login form."""
    pending.clear()
    return redirect(url_for("auth.login"))
