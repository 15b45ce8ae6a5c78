"""OpenID Connect single sign-on: "Sign in with <provider>" on the login page, through Authlib's Flask client.

The contract it keeps:

- The login page never talks to the provider: its button is a link to ``/login/oidc``, so a provider that is
  down costs the page nothing. ``/login/oidc`` reads the provider's discovery document (once per process and
  settings, again after ``METADATA_MAX_AGE``; every call to the provider bounded by ``OIDC_TIMEOUT``) and
  redirects there with ``state``, ``nonce`` and a PKCE S256 challenge.
- ``/login/oidc/callback`` has Authlib check the state, trade the code for tokens and verify the ID token
  (signature by the provider's published keys, issuer, audience, expiry, nonce). ``user_from_claims`` then
  maps the person to a user and ``finish_sign_in`` opens the session.
- A person is their (issuer, subject), never a name: their first sign-in creates a user whose name comes from
  ``OIDC_USERNAME_CLAIM``, made unique so that it never takes over a local account, with an unusable random
  password. Their role comes from ``OIDC_ROLE_CLAIM`` through ``OIDC_ROLE_MAP`` on every sign-in, so a group
  change at the provider takes effect at the next one.
- Every failure (provider unreachable, state mismatch, consent denied, a token that does not verify, no
  mapped role, a disabled account) ends on the login page with a sentence, in the audit log as
  ``auth.sign_in`` (``failed`` or ``refused``, ``detail={"method": "oidc", "reason": ...}``) and in the log;
  never a 500. The client secret, codes and tokens are never logged nor shown.
- ``LOCAL_LOGIN = False`` hides the password form and refuses password sign-ins here, before the login view.
"""
from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import requests
from authlib.integrations.base_client import MismatchingStateError
from authlib.integrations.flask_client import OAuth, OAuthError
from flask import Response, abort, current_app, redirect, render_template, request, session, url_for
from joserfc.errors import JoseError
from sqlalchemy.exc import IntegrityError

from app import audit
from app.auth import bp, is_safe_next
from app.auth.forms import LoginForm
from app.auth.signin import finish_sign_in
from app.extensions import db
from app.forms import NextQuery
from app.models import ROLES, User, utcnow

logger = logging.getLogger(__name__)

CLIENT_NAME = "oidc"  # Authlib's registry name; its state keys in the session start with "_state_oidc_"
METADATA_MAX_AGE = 3600  # seconds a discovery document is trusted before it is read again
_NEXT_KEY = "oidc_next"  # where to go after the provider sends the browser back
_ERROR_KEY = "oidc_error"  # the sentence the login page shows after a failed single sign-on
_USERNAME_LENGTH = 80  # User.username's column
_IDENTITY_LENGTH = 255  # User.oidc_issuer / oidc_subject columns
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SignInError(Exception):
    """Single sign-on did not sign this person in.

    ``reason``: a short word for the audit log (``provider_unreachable``, ``state_mismatch``, ``denied``,
    ``provider_error``, ``invalid_token``, ``no_role``, ``disabled``, ``misconfigured``, ``error``);
    ``message``: the sentence for the person; ``outcome``: ``failed`` (something went wrong) or ``refused``
    (it worked, and Proxboard says no); ``username``: who it was, when known; ``detail``: more for the audit
    log (never a secret).
    """

    def __init__(self, reason: str, message: str, *, outcome: str = "failed", username: str | None = None,
                 detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.outcome = outcome
        self.username = username
        self.detail = detail or {}


def enabled() -> bool:
    """Whether single sign-on is on (``OIDC_ISSUER`` is set)."""
    return bool(_text(current_app.config.get("OIDC_ISSUER")))


def local_login_enabled() -> bool:
    """Whether the password form is offered (``LOCAL_LOGIN``; ``"false"`` from the environment counts as off)."""
    value = current_app.config.get("LOCAL_LOGIN", True)
    return value.strip().lower() not in _FALSE if isinstance(value, str) else bool(value)


def provider_name() -> str:
    """The provider as the button names it (``OIDC_PROVIDER_NAME``)."""
    return _text(current_app.config.get("OIDC_PROVIDER_NAME")) or "Single sign-on"


def parse_role_map(value: Any) -> dict[str, str]:
    """``OIDC_ROLE_MAP`` as ``{claim value: role}``, from a dict or from ``"group=role,group=role"`` text
    (commas or line breaks between entries). Raises ``ValueError`` naming the entry for one without ``=`` or
    with a role not in ``ROLES``."""
    if value is None or value == "":
        return {}
    if isinstance(value, Mapping):
        pairs = [(str(key), str(role)) for key, role in value.items()]
    else:
        pairs = []
        for entry in str(value).replace("\n", ",").split(","):
            if not entry.strip():
                continue
            if "=" not in entry:
                raise ValueError(f"OIDC_ROLE_MAP: {entry.strip()!r} is not group=role")
            key, _, role = entry.rpartition("=")  # a group name may hold "=", a role never does
            pairs.append((key, role))
    mapping = {}
    for key, role in pairs:
        role = role.strip().lower()
        if role not in ROLES:
            raise ValueError(f"OIDC_ROLE_MAP: {key.strip()!r} maps to {role!r}, not one of {', '.join(ROLES)}")
        mapping[key.strip()] = role
    return mapping


def role_for(values: list[str], role_map: Mapping[str, str], default: str | None) -> str | None:
    """The highest role (in ``ROLES`` order) that any of ``values`` maps to, else ``default`` (None: none)."""
    matched = [role_map[value] for value in values if value in role_map]
    return max(matched, key=ROLES.index) if matched else default


def claim_values(claims: Mapping[str, Any], name: str) -> list[str]:
    """The values of claim ``name`` as strings: a list as it is, one string as a list of one, else none."""
    value = claims.get(name)
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value if isinstance(item, (str, int))]
    return []


def _text(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _verify(value: Any) -> bool | str:
    """``OIDC_VERIFY_SSL`` as requests takes it: True, False, or a CA bundle path."""
    if isinstance(value, bool):
        return value
    text = _text(value)
    if text is None or text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    return text


def _settings() -> dict[str, Any]:
    """The checked OIDC settings; raises ``SignInError("misconfigured")`` (the log says what) when unusable."""
    config = current_app.config
    try:
        default_role = _text(config.get("OIDC_DEFAULT_ROLE"))
        if default_role is not None and default_role.lower() not in ROLES:
            raise ValueError(f"OIDC_DEFAULT_ROLE: {default_role!r} is not one of {', '.join(ROLES)}")
        if not _text(config.get("OIDC_CLIENT_ID")):
            raise ValueError("OIDC_CLIENT_ID is not set")
        return {
            "issuer": _text(config.get("OIDC_ISSUER")),
            "client_id": _text(config.get("OIDC_CLIENT_ID")),
            "client_secret": _text(config.get("OIDC_CLIENT_SECRET")),
            "scopes": " ".join(str(config.get("OIDC_SCOPES") or "openid").replace(",", " ").split()),
            "role_claim": _text(config.get("OIDC_ROLE_CLAIM")) or "groups",
            "role_map": parse_role_map(config.get("OIDC_ROLE_MAP")),
            "default_role": default_role.lower() if default_role else None,
            "username_claim": _text(config.get("OIDC_USERNAME_CLAIM")) or "preferred_username",
            "verify": _verify(config.get("OIDC_VERIFY_SSL")),
            "timeout": float(config.get("OIDC_TIMEOUT") or 10),
        }
    except (TypeError, ValueError) as exc:
        logger.error("Single sign-on is misconfigured: %s", exc)
        raise SignInError("misconfigured", "Single sign-on is not set up correctly. Please tell an "
                          "administrator (the server log says what is wrong).") from None


def _client(settings: dict[str, Any]):
    """This app's Authlib client for the provider, built again only when the settings change."""
    key = tuple(sorted((name, repr(value)) for name, value in settings.items()))
    cached = current_app.extensions.get("proxboard.oidc")
    if cached is None or cached[0] != key:
        client_kwargs: dict[str, Any] = {
            "scope": settings["scopes"], "code_challenge_method": "S256",
            "default_timeout": settings["timeout"], "verify": settings["verify"],
        }
        if settings["verify"] is not True:
            client_kwargs["trust_env"] = False  # else requests lets REQUESTS_CA_BUNDLE override the CA file
        if settings["client_secret"] is None:
            client_kwargs["token_endpoint_auth_method"] = "none"  # a public client: PKCE alone
        oauth = OAuth()
        oauth.app = current_app._get_current_object()  # not init_app: nothing of Authlib's in app.extensions
        # Authlib keeps state, nonce and PKCE verifier in Flask's signed session cookie until the callback:
        # the verifier is worth nothing without the code and the client secret, and the cookie is this browser's.
        client = oauth.register(CLIENT_NAME, client_id=settings["client_id"],
                                client_secret=settings["client_secret"],
                                server_metadata_url=settings["issuer"].rstrip("/")
                                + "/.well-known/openid-configuration",
                                client_kwargs=client_kwargs)
        cached = (key, client)
        current_app.extensions["proxboard.oidc"] = cached
    client = cached[1]
    loaded_at = client.server_metadata.get("_loaded_at")
    if loaded_at is not None and time.time() - loaded_at > METADATA_MAX_AGE:
        client.server_metadata.clear()  # the provider may have moved an endpoint or rotated its keys
    return client


@contextmanager
def _provider_calls() -> Iterator[None]:
    """Turn what can go wrong between Proxboard and the provider into ``SignInError`` (and a log line)."""
    name = provider_name()
    try:
        yield
    except SignInError:
        raise
    except MismatchingStateError:
        logger.warning("Single sign-on refused: the state does not match this browser's sign-in")
        raise SignInError("state_mismatch", "That sign-in link has expired or was already used. "
                          "Please sign in again.") from None
    except OAuthError as exc:
        if exc.error == "access_denied":
            raise SignInError("denied", f"Sign-in was cancelled at {name}.") from None
        logger.warning("Single sign-on: the provider answered %s (%s)", exc.error, exc.description)
        raise SignInError("provider_error", f"{name} refused the sign-in ({exc.error}). Please try again, "
                          "or tell an administrator.", detail={"error": str(exc.error)[:64]}) from None
    except requests.exceptions.SSLError as exc:
        logger.warning("Single sign-on: TLS with the provider failed (check OIDC_VERIFY_SSL): %s", exc)
        raise SignInError("provider_unreachable", f"{name} cannot be reached securely (its certificate is "
                          "not trusted). Please tell an administrator.") from None
    except (requests.ConnectionError, requests.Timeout) as exc:
        logger.warning("Single sign-on: the provider cannot be reached: %s", exc)
        raise SignInError("provider_unreachable", f"{name} cannot be reached right now. Please try again "
                          "in a moment, or tell an administrator.") from None
    except (requests.RequestException, ValueError) as exc:  # an error status, an answer that is not JSON
        logger.warning("Single sign-on: the provider's answer is unusable: %s", exc)
        raise SignInError("provider_error", f"{name} gave an answer Proxboard cannot use. Please try again, "
                          "or tell an administrator.") from None
    except JoseError as exc:
        logger.warning("Single sign-on refused: the ID token does not verify: %s", exc)
        raise SignInError("invalid_token", f"The answer from {name} could not be verified, so you were not "
                          "signed in. Please try again.") from None
    except Exception:  # noqa: BLE001  (a provider is outside code: whatever it does, the person gets a page)
        logger.exception("Single sign-on failed unexpectedly")
        raise SignInError("error", f"Signing in with {name} failed. Please try again, or tell an "
                          "administrator.") from None


def authorization_redirect(redirect_uri: str) -> Response:
    """The redirect to the provider's sign-in page, with state, nonce and a PKCE challenge kept for the callback.

    Raises ``SignInError`` when the settings are unusable, the provider cannot be reached or its discovery
    document names another issuer than ``OIDC_ISSUER`` (OpenID Connect Discovery 1.0, section 4.3).
    """
    settings = _settings()
    with _provider_calls():
        client = _client(settings)
        issuer = str(client.load_server_metadata().get("issuer") or "")
        if issuer.rstrip("/") != settings["issuer"].rstrip("/"):
            client.server_metadata.clear()
            logger.error("Single sign-on: OIDC_ISSUER is %r but the provider calls itself %r",
                         settings["issuer"], issuer)
            raise SignInError("misconfigured", "Single sign-on is not set up correctly. Please tell an "
                              "administrator (the server log says what is wrong).")
        return client.authorize_redirect(redirect_uri)


def claims_from_callback() -> dict[str, Any]:
    """The verified claims of the person the provider sent back to this request (the callback), with the
    userinfo endpoint's when the ID token lacks the role claim (providers that keep groups out of ID tokens).

    Raises ``SignInError`` for a state that is not this browser's, a denied consent, a provider error or
    an ID token that does not verify.
    """
    settings = _settings()
    with _provider_calls():
        client = _client(settings)
        token = client.authorize_access_token()
        claims = dict(token.get("userinfo") or {})
        if not claims:
            raise SignInError("invalid_token", f"{provider_name()} sent no ID token, so you were not signed "
                              "in. Please tell an administrator (is the openid scope in OIDC_SCOPES?).")
        if settings["role_claim"] not in claims and client.server_metadata.get("userinfo_endpoint"):
            extra = dict(client.userinfo(token=token))
            if extra.get("sub") == claims.get("sub"):  # OpenID Connect Core 5.3.2: else it must not be used
                claims = {**extra, **claims}
    return claims


def user_from_claims(claims: Mapping[str, Any]) -> User:
    """The user for the person these verified claims describe, created on their first sign-in, with the role
    their role claim maps to now (``user.role_changed`` audited when it changes). Changes are added to the
    session, not committed (``finish_sign_in`` commits them with the sign-in).

    Raises ``SignInError`` (outcome ``refused``) for a disabled user and for a person whose claim maps to
    no role while ``OIDC_DEFAULT_ROLE`` is None; nothing changes then.
    """
    settings = _settings()
    issuer, subject = _text(claims.get("iss")), _text(claims.get("sub"))
    if not issuer or not subject or len(issuer) > _IDENTITY_LENGTH or len(subject) > _IDENTITY_LENGTH:
        raise SignInError("invalid_token", f"{provider_name()} did not say who you are in a form Proxboard "
                          "can keep. Please tell an administrator.")
    user = db.session.scalar(db.select(User).filter_by(oidc_issuer=issuer, oidc_subject=subject))
    wanted_name = _wanted_username(claims, settings["username_claim"], subject)
    if user is not None and not user.is_active:
        raise SignInError("disabled", "This account is disabled. Please ask an administrator.",
                          outcome="refused", username=user.username)
    values = claim_values(claims, settings["role_claim"])
    role = role_for(values, settings["role_map"], settings["default_role"])
    if role is None:
        raise SignInError("no_role", f"Your {provider_name()} account is in no group that may use Proxboard. "
                          "Please ask an administrator to add you to one.", outcome="refused",
                          username=user.username if user is not None else wanted_name,
                          detail={settings["role_claim"][:64]: [value[:80] for value in values[:20]]})
    if user is None:
        user = _create_sso_user(wanted_name, role, issuer, subject)
    if user.role != role:
        audit.record("user.role_changed", user=user, target=f"user {user.username}",
                     detail={"source": "oidc", "from": user.role, "to": role})
        user.role = role
    user.last_login_at = utcnow()
    return user


def _create_sso_user(wanted_name: str, role: str, issuer: str, subject: str) -> User:
    """The new user for a first sign-in, or, when the same person's other first sign-in (a second tab, a
    double click) created them a moment ago, that user: the unique identity decides, in a savepoint."""
    user = User(username=_free_username(wanted_name), role=role, oidc_issuer=issuer, oidc_subject=subject)
    user.set_password(secrets.token_urlsafe(32))  # never told to anyone: SSO users have no password
    try:
        with db.session.begin_nested():
            db.session.add(user)
    except IntegrityError:
        existing = db.session.scalar(db.select(User).filter_by(oidc_issuer=issuer, oidc_subject=subject))
        if existing is None:  # the name was taken in between, not the identity: try once more
            return _create_sso_user(f"{wanted_name[:_USERNAME_LENGTH - 13]}-{secrets.token_hex(4)}", role,
                                    issuer, subject)
        return existing
    audit.record("user.created", user=user, target=f"user {user.username}", detail={"source": "oidc", "role": role})
    return user


def _wanted_username(claims: Mapping[str, Any], claim: str, subject: str) -> str:
    for value in (claims.get(claim), claims.get("preferred_username"), claims.get("email")):
        name = "".join(ch for ch in str(value or "") if ch.isprintable()).strip()
        if name:
            return name[:_USERNAME_LENGTH]
    return f"sso-{subject}"[:_USERNAME_LENGTH]


def _free_username(wanted: str) -> str:
    """``wanted`` when nobody has it, else ``wanted-sso``, ``wanted-sso2``…: never an existing account's name."""
    candidates = [wanted] + [f"{wanted[:_USERNAME_LENGTH - 8]}-sso{n if n > 1 else ''}" for n in range(1, 20)]
    taken = set(db.session.scalars(db.select(User.username).where(User.username.in_(candidates))))
    for candidate in candidates:
        if candidate not in taken:
            return candidate
    return f"{wanted[:_USERNAME_LENGTH - 13]}-sso-{secrets.token_hex(4)}"


def _back_to_login(error: SignInError, next_url: str | None) -> Response:
    """Audit and log the failure, keep its sentence for the login page, and send the browser there."""
    db.session.rollback()
    audit.record("auth.sign_in", outcome=error.outcome, username=error.username,
                 detail={"method": "oidc", "reason": error.reason, **error.detail})
    db.session.commit()
    logger.warning("Single sign-on %s for %s from %s: %s", error.outcome, error.username or "an unknown person",
                   request.remote_addr or "an unknown address", error.reason)
    session[_ERROR_KEY] = error.message
    return redirect(url_for("auth.login", next=next_url if is_safe_next(next_url) else None))


@bp.get("/login/oidc")
def oidc_login():
    """Send the browser to the provider's sign-in page (404 when single sign-on is off)."""
    if not enabled():
        abort(404)
    next_url = NextQuery().next.data
    try:
        response = authorization_redirect(url_for("auth.oidc_callback", _external=True))
    except SignInError as exc:
        return _back_to_login(exc, next_url)
    session[_NEXT_KEY] = next_url if is_safe_next(next_url) else None
    return response


@bp.get("/login/oidc/callback")
def oidc_callback():
    """Where the provider sends the browser back: sign the person in, or the login page with the reason."""
    if not enabled():
        abort(404)
    next_url = session.pop(_NEXT_KEY, None)
    try:
        user = user_from_claims(claims_from_callback())
    except SignInError as exc:
        return _back_to_login(exc, next_url)
    return redirect(finish_sign_in(user, method="oidc", next_url=next_url))


# Proxboard's own ways in that LOCAL_LOGIN turns off (the second step after a password needs the password first).
LOCAL_SIGN_IN_ENDPOINTS = {"auth.login", "auth.passkey_sign_in_options", "auth.passkey_sign_in"}


@bp.before_request
def refuse_local_sign_in():
    """With ``LOCAL_LOGIN`` off, a password or a passkey sent to sign in is refused (403) before it is checked."""
    if request.method != "POST" or request.endpoint not in LOCAL_SIGN_IN_ENDPOINTS or local_login_enabled():
        return None
    message = "Password sign-in is turned off." + (f" Please sign in with {provider_name()}." if enabled() else "")
    if request.endpoint == "auth.passkey_sign_in_options":
        return {"error": message}, 403  # asked for by the passkey button's script
    form = LoginForm()
    if request.endpoint == "auth.login" and form.validate_on_submit():  # a forged POST is not worth an entry
        audit.record("auth.sign_in", outcome="refused", username=form.username.data.strip(),
                     detail={"method": "password", "reason": "local_login_off"})
        db.session.commit()
    return render_template("auth/login.html", form=LoginForm(formdata=None, next=form.next.data),
                           sso_error=message), 403


@bp.context_processor
def sign_in_options() -> dict[str, Any]:
    """What the login page needs: ``local_login``, ``sso`` (the button's provider name, or None) and
    ``sso_error`` (the sentence of a failed single sign-on, shown once)."""
    options: dict[str, Any] = {"local_login": local_login_enabled(),
                               "sso": {"name": provider_name()} if enabled() else None}
    if request.endpoint == "auth.login":
        options["sso_error"] = session.pop(_ERROR_KEY, None)
    return options
