"""Login, logout and the colour theme."""
from flask import flash, g, redirect, render_template, request, session, url_for

from app.auth import bp, is_safe_next
from app.auth.forms import LoginForm, ThemeForm
from app.auth.services import authenticate, set_theme
from app.forms import NextQuery

@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the sign-in form and sign the user in."""
    form = LoginForm(next=NextQuery().next.data or "")
    if form.validate_on_submit():
        user = authenticate(form.username.data, form.password.data)
        if user is not None:
            session.clear()
            session["user_id"] = user.id
            session.permanent = True
            target = form.next.data if is_safe_next(form.next.data) else url_for("dashboard.index")
            return redirect(target)
        form.password.errors.append("Invalid username or password.")
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
def logout():
    """Sign out."""
    session.clear()
    flash("You have been signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.post("/theme")
def theme():
    """Remember the signed-in user's colour theme and go back to the page they were on."""
    form = ThemeForm()
    if form.validate_on_submit():
        set_theme(g.user, form.theme.data)
    else:
        flash("The theme could not be changed. Please try again.", "error")
    target = form.next.data if is_safe_next(form.next.data) else url_for("dashboard.index")
    return redirect(target)
