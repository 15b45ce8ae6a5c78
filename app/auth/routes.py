"""Sign in and out, the signed-in user's sessions and password, and the colour theme."""
from flask import abort, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_login import logout_user

from app import audit
from app.auth import bp, is_safe_next, pending, services, session_lifetimes, throttle, twofactor
from app.auth.signin import finish_sign_in
from app.extensions import db
from app.auth.forms import ChangePasswordForm, LoginForm, PasskeySignInForm, ThemeForm
from app.forms import NextQuery


def _current_session_id() -> int | None:
    current = g.get("auth_session")
    return current.id if current is not None else None


def _sign_out() -> None:
    logout_user()
    session.clear()


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the sign-in form and sign the user in (throttled: see ``throttle``)."""
    form = LoginForm(next=NextQuery().next.data or "")
    if form.validate_on_submit():
        user = services.authenticate(form.username.data, form.password.data, ip=request.remote_addr)
        if user is not None:
            return redirect(_after_password(user, form.next.data))
        audit.record("auth.sign_in", outcome="failed", username=form.username.data.strip(),
                     detail={"method": "password"})
        db.session.commit()
        throttle.count_failure()
        form.password.errors.append("Invalid username or password.")
    return render_template("auth/login.html", form=form, passkey_form=PasskeySignInForm(next=form.next.data))


def _after_password(user, next_url: str | None) -> str:
    """Where a right password leads: the second step when ``user`` has a second factor, its enrolment when one
    is required of them and they have none, else straight in (the only case that opens a session here)."""
    if twofactor.has_second_factor(user):
        pending.start(user, next_url)
        return url_for("auth.verify")
    if twofactor.second_factor_required(user):
        pending.start(user, next_url, enrol=True)
        twofactor.start_totp(user)
        return url_for("auth.enrol")
    return finish_sign_in(user, method="password", next_url=next_url)


@bp.post("/logout")
def logout():
    """Sign out: the session ends on the server, so a copy of the cookie no longer works either."""
    if _current_session_id() is not None:
        services.end_session(g.user, _current_session_id())
    _sign_out()
    flash("You have been signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.get("/account/sessions")
def sessions():
    """The signed-in user's sessions (this browser marked), each with an End button, and Sign out everywhere."""
    return render_template("auth/sessions.html", sessions=services.list_sessions(g.user),
                           current_id=_current_session_id(), idle_minutes=current_app.config["SESSION_IDLE_MINUTES"],
                           max_hours=current_app.config["SESSION_MAX_HOURS"])


@bp.post("/account/sessions/<int:session_id>/end")
def end_session(session_id: int):
    """End one of the user's sessions (:raise 404: when it is not theirs); ending this one signs out here."""
    try:
        services.end_session(g.user, session_id)
    except services.SessionNotFound:
        abort(404)
    if session_id == _current_session_id():
        _sign_out()
        flash("You have been signed out.", "info")
        return redirect(url_for("auth.login"))
    flash("That session has been signed out.", "success")
    return redirect(url_for("auth.sessions"))


@bp.post("/account/sessions/end-all")
def sign_out_everywhere():
    """End every session of the user, this one included."""
    ended = services.end_sessions(g.user)
    _sign_out()
    flash(f"Signed out everywhere ({ended} session{'s' if ended != 1 else ''} ended).", "info")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
def password():
    """Change the signed-in user's password; their other sessions end, this one stays."""
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            ended = services.change_password(g.user, form.current_password.data, form.new_password.data,
                                             keep_session=_current_session_id())
        except services.WrongPassword as exc:
            form.current_password.errors.append(str(exc))
        except ValueError as exc:
            form.new_password.errors.append(str(exc))
        else:
            others = f" {ended} other session{'s' if ended != 1 else ''} signed out." if ended else ""
            flash(f"Your password has been changed.{others}", "success")
            return redirect(url_for("auth.sessions"))
    return render_template("auth/password.html", form=form)


@bp.post("/theme")
def theme():
    """Remember the signed-in user's colour theme and go back to the page they were on."""
    form = ThemeForm()
    if form.validate_on_submit():
        services.set_theme(g.user, form.theme.data)
    else:
        flash("The theme could not be changed. Please try again.", "error")
    target = form.next.data if is_safe_next(form.next.data) else url_for("dashboard.index")
    return redirect(target)
