"""``/users``: the admin's list of users, a user's page with its actions, and the one-time password pages.

Who may come here is decided by the permission map (``app.auth.roles``: ``users.`` is admin only). Destructive
actions (delete, reset password, reset second factor) answer GET with a confirmation page whose form POSTs.
A generated password is rendered once in the POST's answer (``no-store``), never flashed: flashes live in the
readable session cookie.
"""
from __future__ import annotations

from flask import abort, flash, g, make_response, redirect, render_template, request, url_for

from app import audit
from app.users import bp, services
from app.users.forms import ROLE_HELP, CreateUserForm, Require2faForm, RoleForm, RoleQuery


def _user_or_404(user_id: int):
    """The user ``user_id``; :raise 404: when there is none."""
    try:
        return services.get_user(user_id)
    except LookupError as exc:
        abort(404, description=str(exc))


def _back(user) -> str:
    return url_for(".detail", user_id=user.id)


def _reveal(user, password: str, reason: str):
    """The page showing ``password`` this once; never cached, never in the cookie. A new user's answers
    201 Created (the page stands in for the redirect a form's success gives)."""
    response = make_response(render_template("users/password.html", user=user, password=password, reason=reason),
                             201 if reason == "created" else 200)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/")
def index():
    """Every user with their role, second factor, sign-in source, last sign-in, state and sessions."""
    return render_template("users/index.html", rows=services.list_users(), role_help=ROLE_HELP)


@bp.route("/new", methods=["GET", "POST"])
def create():
    """Create a user; without a password typed, one is generated and shown once."""
    form = CreateUserForm()
    if form.validate_on_submit():
        try:
            user, generated = services.create_account(form.username.data, role=form.role.data,
                                                      password=form.password.data or None, actor=g.user)
        except (services.UserExists, services.UserError) as exc:
            form.username.errors.append(str(exc))
        except ValueError as exc:
            form.password.errors.append(str(exc))
        else:
            if generated:
                return _reveal(user, generated, "created")
            flash(f"User {user.username} created.", "success")
            return redirect(_back(user))
    return render_template("users/new.html", form=form, role_help=ROLE_HELP)


@bp.get("/<int:user_id>")
def detail(user_id: int):
    """One user: their state and every action on them."""
    user = _user_or_404(user_id)
    return render_template("users/detail.html", row=services.row_for(user), user=user,
                           role_form=RoleForm(role=user.role), role_help=ROLE_HELP)


@bp.get("/<int:user_id>/role")
def confirm_role(user_id: int):
    """One's own page sends its role select here first: demoting oneself is asked before anything is posted."""
    user = _user_or_404(user_id)
    role = RoleQuery().role.data
    if user.id != g.user.id or role not in ROLE_HELP or role == user.role:
        return redirect(_back(user))
    if services.is_last_active_admin(user):
        flash(f"{user.username} is the last active admin: make someone else admin first.", "error")
        return redirect(_back(user))
    return render_template("users/confirm.html", what="demote", user=user, role=role)


@bp.post("/<int:user_id>/role")
def set_role(user_id: int):
    """Change the role; demoting oneself first shows a confirmation, and the last active admin stays admin."""
    user = _user_or_404(user_id)
    form = RoleForm()
    if not form.validate_on_submit():
        flash(" ".join(form.role.errors) or "The role could not be changed. Please try again.", "error")
        return redirect(_back(user))
    old = user.role
    try:
        changed = services.set_role(user, form.role.data, actor=g.user, confirmed=form.confirm.data)
    except services.SelfDemotion:  # a page from before: ask now
        audit.nothing_done()
        return render_template("users/confirm.html", what="demote", user=user, role=form.role.data)
    except services.UserError as exc:
        flash(str(exc), "error")
        return redirect(_back(user))
    if changed:
        flash(f"{user.username} is now {user.role} (was {old}).", "success")
    if user.id == g.user.id and user.role != "admin":
        return redirect(url_for("dashboard.index"))  # this page is for admins only
    return redirect(_back(user))


@bp.post("/<int:user_id>/disable")
def disable(user_id: int):
    """Disable the user: they are signed out everywhere at once and cannot sign in."""
    user = _user_or_404(user_id)
    try:
        ended = services.disable(user, actor=g.user)
    except services.UserError as exc:
        flash(str(exc), "error")
    else:
        flash(f"{user.username} is disabled; {ended} session{'s' if ended != 1 else ''} ended.", "success")
    return redirect(_back(user))


@bp.post("/<int:user_id>/enable")
def enable(user_id: int):
    """Let a disabled user sign in again."""
    user = _user_or_404(user_id)
    if services.enable(user, actor=g.user):
        flash(f"{user.username} may sign in again.", "success")
    return redirect(_back(user))


@bp.post("/<int:user_id>/require-2fa")
def require_2fa(user_id: int):
    """Require (or stop requiring) a second factor for this user at sign-in."""
    user = _user_or_404(user_id)
    form = Require2faForm()
    if form.validate_on_submit():
        required = form.required.data == "on"
        if services.set_require_2fa(user, required, actor=g.user):
            flash(f"{user.username} {'must' if required else 'no longer has to'} use a second factor to sign in.",
                  "success")
    else:
        flash("The setting could not be changed. Please try again.", "error")
    return redirect(_back(user))


@bp.route("/<int:user_id>/reset-password", methods=["GET", "POST"])
def reset_password(user_id: int):
    """Confirm, then give the user a new random password (shown once) and end their sessions."""
    user = _user_or_404(user_id)
    if g.user.id == user.id:
        flash("Change your own password under Change password in the user menu.", "info")
        return redirect(url_for("auth.password"))
    if request.method == "GET":
        return render_template("users/confirm.html", what="reset-password", user=user)
    try:
        password = services.reset_password(user, actor=g.user)
    except services.UserError as exc:
        flash(str(exc), "error")
        return redirect(_back(user))
    return _reveal(user, password, "reset")


@bp.route("/<int:user_id>/reset-2fa", methods=["GET", "POST"])
def reset_2fa(user_id: int):
    """Confirm, then remove the user's authenticator app, recovery codes and passkeys."""
    user = _user_or_404(user_id)
    if request.method == "GET":
        return render_template("users/confirm.html", what="reset-2fa", user=user, row=services.row_for(user))
    removed = services.reset_2fa(user, actor=g.user)
    flash(f"Second factor of {user.username} reset: {'authenticator app, ' if removed['totp'] else ''}"
          f"{removed['recovery_codes']} recovery codes and {removed['passkeys']} passkeys removed.", "success")
    return redirect(_back(user))


@bp.route("/<int:user_id>/delete", methods=["GET", "POST"])
def delete(user_id: int):
    """Confirm, then delete the user (never oneself, never the last active admin)."""
    user = _user_or_404(user_id)
    if request.method == "GET":
        return render_template("users/confirm.html", what="delete", user=user, row=services.row_for(user))
    name = user.username
    try:
        services.delete(user, actor=g.user)
    except services.UserError as exc:
        flash(str(exc), "error")
        return redirect(_back(user))
    flash(f"User {name} deleted.", "success")
    return redirect(url_for(".index"))
