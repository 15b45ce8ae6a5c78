"""``/alerts``: open incidents, rules, channels (with "Send test"), maintenance windows and the history; and
the container page's Mute alerts.

Who may come here is decided by the permission map (``app.auth.roles``): everyone sees the page, admins change
rules and channels (a channel's URL holds its tokens), operators mute containers and open maintenance windows.
A channel's URL is write-only: no page ever shows it again, an empty field on edit keeps it. Deleting a rule or
a channel answers GET with a confirmation page whose form POSTs.
"""
from __future__ import annotations

from datetime import timedelta

from flask import abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select
from wtforms.fields.choices import SelectChoice

from app.alerts import bp, services
from app.alerts.delivery import ChannelURLError
from app.alerts.forms import ChannelForm, MaintenanceForm, MuteForm, RuleForm
from app.extensions import db
from app.forms import PageQuery
from app.models import DEFAULT_CLUSTER, Cluster, Container, utcnow


def _rule_or_404(rule_id: int):
    try:
        return services.get_rule(rule_id)
    except LookupError as exc:
        abort(404, description=str(exc))


def _channel_or_404(channel_id: int):
    try:
        return services.get_channel(channel_id)
    except LookupError as exc:
        abort(404, description=str(exc))


def _container_or_404(vmid: int) -> Container:
    container = Container.current(vmid)
    if container is None:
        abort(404, description=f"Proxboard knows no container {vmid}.")
    return container


def _nodes() -> list[str]:
    """The nodes Proxboard has seen containers on (from its records: this page asks Proxmox nothing), as alert
    subjects name them: ``pve1``, ``lab/lab1`` in a cluster other than the default one."""
    rows = db.session.execute(select(Cluster.name, Container.node).join(Cluster, Cluster.id == Container.cluster_id)
                              .distinct())
    return sorted(node if cluster == DEFAULT_CLUSTER else f"{cluster}/{node}" for cluster, node in rows if node)


def _index_page(maintenance: MaintenanceForm | None = None, status: int = 200):
    return render_template(
        "alerts/index.html", incidents=services.open_incidents(), rules=services.rules(),
        channels=services.channel_rows(), windows=services.current_and_coming_windows(),
        maintenance=maintenance or MaintenanceForm(nodes=_nodes()), labels=services.KIND_LABELS,
        units=services.THRESHOLD_UNITS, now=utcnow()), status


@bp.get("")
def index():
    """Open incidents, the rules, the channels, the maintenance windows now and to come."""
    return _index_page()


@bp.get("/history")
def history():
    """Every incident that opened, newest first, with how many messages went out for it (50 a page)."""
    query = PageQuery()
    page = services.history(query.page_number)
    return render_template("alerts/history.html", page=page, sent=services.deliveries_for(page.items),
                           containers=services.containers_by_id(page.items))


def _channel_choices(form: RuleForm) -> None:
    form.channels.choices = [SelectChoice(channel.id, channel.name) for channel in services.channels()]


def _chosen_channels(form: RuleForm) -> list:
    wanted = set(form.channels.data or ())
    return [channel for channel in services.channels() if channel.id in wanted]


def _save_rule(form: RuleForm, rule=None):
    """Create or update from ``form`` (the service's refusal goes under the threshold). Returns the rule or None."""
    values = {"name": form.name.data, "threshold": form.threshold.data, "for_minutes": form.for_minutes.data,
              "repeat_minutes": form.repeat_minutes.data, "enabled": form.enabled.data}
    try:
        if rule is None:
            return services.create_rule(form.kind.data, _chosen_channels(form), **values)
        services.update_rule(rule, _chosen_channels(form), kind=form.kind.data, **values)
        return rule
    except ValueError as exc:
        form.threshold.errors.append(str(exc))
        db.session.rollback()
        return None


@bp.route("/rules/new", methods=["GET", "POST"])
def create_rule():
    """A new rule; every channel is ticked to begin with."""
    form = RuleForm()
    _channel_choices(form)
    if request.method == "GET":
        form.channels.data = [choice.value for choice in form.channels.choices]
    if form.validate_on_submit() and (rule := _save_rule(form)) is not None:
        flash(f"Rule “{rule.name}” added.", "success")
        return redirect(url_for(".index"))
    return render_template("alerts/rule.html", form=form, rule=None, units=services.THRESHOLD_UNITS)


@bp.route("/rules/<int:rule_id>", methods=["GET", "POST"])
def edit_rule(rule_id: int):
    """Change a rule."""
    rule = _rule_or_404(rule_id)
    form = RuleForm(obj=rule)
    _channel_choices(form)
    if request.method == "GET":
        form.channels.data = [channel.id for channel in rule.channels]
    if form.validate_on_submit() and _save_rule(form, rule) is not None:
        flash(f"Rule “{rule.name}” saved.", "success")
        return redirect(url_for(".index"))
    return render_template("alerts/rule.html", form=form, rule=rule, units=services.THRESHOLD_UNITS)


@bp.post("/rules/<int:rule_id>/toggle")
def toggle_rule(rule_id: int):
    """Turn a rule on or off (the button says which)."""
    rule = _rule_or_404(rule_id)
    services.set_rule_enabled(rule, not rule.enabled)
    flash(f"Rule “{rule.name}” is {'on' if rule.enabled else 'off'}.", "success")
    return redirect(url_for(".index"))


@bp.route("/rules/<int:rule_id>/delete", methods=["GET", "POST"])
def delete_rule(rule_id: int):
    """Ask, then remove a rule and its incidents."""
    rule = _rule_or_404(rule_id)
    if request.method == "POST":
        name = rule.name
        services.delete_rule(rule)
        flash(f"Rule “{name}” deleted.", "success")
        return redirect(url_for(".index"))
    return render_template("alerts/confirm.html", title=f"Delete the rule “{rule.name}”?",
                           text="Its incidents and their history go with it. Nobody is told of open ones resolving.",
                           action=url_for(".delete_rule", rule_id=rule.id), label="Delete rule")


def _save_channel(form: ChannelForm, channel=None):
    """Create or update from ``form``; the error goes to the field it concerns. Returns the channel or None."""
    try:
        if channel is None:
            if not form.url.data:
                form.url.errors.append("A channel needs its Apprise URL.")
                return None
            return services.create_channel(form.name.data, form.url.data, form.rate_limit.data, form.enabled.data)
        services.update_channel(channel, form.name.data, form.url.data, form.rate_limit.data, form.enabled.data)
        return channel
    except ChannelURLError as exc:
        form.url.errors.append(str(exc))
    except services.NameTaken as exc:
        form.name.errors.append(str(exc))
    except ValueError as exc:
        form.rate_limit.errors.append(str(exc))
    db.session.rollback()
    return None


@bp.route("/channels/new", methods=["GET", "POST"])
def create_channel():
    """A new channel from its Apprise URL."""
    form = ChannelForm()
    if form.validate_on_submit() and (channel := _save_channel(form)) is not None:
        flash(f"Channel “{channel.name}” added. Send a test to check it.", "success")
        return redirect(url_for(".index", _anchor="channels"))
    return render_template("alerts/channel.html", form=form, channel=None)


@bp.route("/channels/<int:channel_id>", methods=["GET", "POST"])
def edit_channel(channel_id: int):
    """Change a channel; its URL is never shown (an empty field keeps it)."""
    channel = _channel_or_404(channel_id)
    form = ChannelForm(obj=channel)
    if request.method == "GET":
        form.url.data = ""
    if form.validate_on_submit() and _save_channel(form, channel) is not None:
        flash(f"Channel “{channel.name}” saved.", "success")
        return redirect(url_for(".index", _anchor="channels"))
    return render_template("alerts/channel.html", form=form, channel=channel,
                           service=services.channel_service(channel))


@bp.post("/channels/<int:channel_id>/test")
def test_channel(channel_id: int):
    """Send a test message through the channel now, and say how it went."""
    channel = _channel_or_404(channel_id)
    outcome = services.send_test(channel)
    flash(outcome.message, "success" if outcome.ok else "error")
    return redirect(url_for(".index", _anchor="channels"))


@bp.route("/channels/<int:channel_id>/delete", methods=["GET", "POST"])
def delete_channel(channel_id: int):
    """Ask, then remove a channel (its rules stay, without it)."""
    channel = _channel_or_404(channel_id)
    if request.method == "POST":
        name = channel.name
        services.delete_channel(channel)
        flash(f"Channel “{name}” deleted.", "success")
        return redirect(url_for(".index", _anchor="channels"))
    rules = [rule.name for rule in channel.rules]
    text = (f"The rules sending to it ({', '.join(rules)}) stay, without it." if rules
            else "No rule sends to it.")
    return render_template("alerts/confirm.html", title=f"Delete the channel “{channel.name}”?", text=text,
                           action=url_for(".delete_channel", channel_id=channel.id), label="Delete channel")


@bp.post("/maintenance")
def add_maintenance():
    """Open a maintenance window: no message while it lasts, over everything, a node or one container."""
    form = MaintenanceForm(nodes=_nodes())
    if form.validate_on_submit():
        starts = form.start()
        window = services.add_maintenance(starts, starts + timedelta(hours=form.hours.data), form.window_scope(),
                                          form.note.data or None, g.user.username if g.get("user") else None)
        flash(f"Maintenance window added until {window.ends_at:%Y-%m-%d %H:%M} UTC.", "success")
        return redirect(url_for(".index", _anchor="maintenance"))
    flash("The maintenance window was not added: see the form.", "error")
    return _index_page(form, 200)


@bp.post("/maintenance/<int:window_id>/end")
def end_maintenance(window_id: int):
    """End a window now (one still to come is removed)."""
    try:
        services.end_window(window_id)
    except LookupError as exc:
        abort(404, description=str(exc))
    flash("Maintenance window ended.", "success")
    return redirect(url_for(".index", _anchor="maintenance"))


@bp.post("/containers/<int:vmid>/mute")
def mute(vmid: int):
    """Mute a container's alerts for the chosen time (its incidents are still recorded)."""
    container = _container_or_404(vmid)
    form = MuteForm()
    if not form.validate_on_submit():
        flash("Pick how long to mute this container's alerts.", "error")
        return redirect(url_for("containers.detail", vmid=vmid))
    until = utcnow() + timedelta(minutes=int(form.minutes.data))
    services.mute_container(container.id, until, g.user.username if g.get("user") else None)
    flash(f"Alerts of CT {vmid} are muted until {until:%Y-%m-%d %H:%M} UTC.", "success")
    return redirect(url_for("containers.detail", vmid=vmid))


@bp.post("/containers/<int:vmid>/unmute")
def unmute(vmid: int):
    """End a container's mute now."""
    container = _container_or_404(vmid)
    if services.unmute_container(container.id):
        flash(f"Alerts of CT {vmid} are no longer muted.", "success")
    else:
        flash(f"Alerts of CT {vmid} were not muted.", "info")
    return redirect(url_for("containers.detail", vmid=vmid))
