"""Passkeys (WebAuthn, through duo-labs' ``webauthn`` package): registering them and signing in with them.

- The relying party is the host the browser asked for (``WEBAUTHN_RP_ID`` overrides it, e.g. to share passkeys
  between sub-domains); the expected origin is the request's scheme and host, which ``PROXY_FIX`` takes from
  ``X-Forwarded-*``, so a proxied deployment checks the address the browser really saw.
- Every ceremony's challenge is made here and handed back to the caller to keep (the views keep it in the
  signed session: it is not a secret) and to hand in once (popped: a response cannot be replayed).
- ``User.webauthn_user_id`` is a random 32-byte user handle made at the first registration: authenticators
  store it, so it must not be the database id or the name.
- A passkey after the password needs user verification only when the authenticator offers it; a passkey alone
  (discoverable credential, no name typed) must have verified the user (PIN or biometrics), which makes it
  two factors by itself.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app, request
from webauthn import (generate_authentication_options, generate_registration_options, options_to_json,
                      verify_authentication_response, verify_registration_response)
from webauthn.helpers import parse_authentication_credential_json, parse_registration_credential_json
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (AuthenticatorSelectionCriteria, AuthenticatorTransport,
                                      PublicKeyCredentialDescriptor, ResidentKeyRequirement,
                                      UserVerificationRequirement)

from app import audit
from app.auth import twofactor
from app.extensions import db
from app.models import User, utcnow
from app.models.user import Passkey, RecoveryCode

NAME_LENGTH = 80
TIMEOUT_MS = 120_000


class PasskeyError(ValueError):
    """A passkey response that cannot be accepted (unknown, not this user's, or not verified); the message says why."""


class PasskeyNotFound(LookupError):
    """No passkey with that id belongs to the user."""


@dataclass(frozen=True)
class RelyingParty:
    """Who the passkeys are for: ``id`` (a host name), ``name`` (shown by the browser), ``origin`` (scheme://host[:port])."""

    id: str
    name: str
    origin: str


def relying_party() -> RelyingParty:
    """The relying party of this request: the host name asked for (or ``WEBAUTHN_RP_ID``), named
    ``WEBAUTHN_RP_NAME``, at the origin the browser used."""
    config = current_app.config
    host_name = urlsplit(f"//{request.host}").hostname or "localhost"
    return RelyingParty(id=config.get("WEBAUTHN_RP_ID") or host_name,
                        name=config.get("WEBAUTHN_RP_NAME") or "Proxboard",
                        origin=f"{request.scheme}://{request.host}")


def _transports(names) -> list[AuthenticatorTransport] | None:
    known = {item.value for item in AuthenticatorTransport}
    return [AuthenticatorTransport(name) for name in names or () if name in known] or None


def _descriptors(passkeys: list[Passkey]) -> list[PublicKeyCredentialDescriptor]:
    return [PublicKeyCredentialDescriptor(id=bytes(item.credential_id), transports=_transports(item.transports))
            for item in passkeys]


def list_passkeys(user: User) -> list[Passkey]:
    """``user``'s passkeys, oldest first."""
    return list(db.session.scalars(db.select(Passkey).filter_by(user_id=user.id).order_by(Passkey.id)))


def registration_options(user: User, rp: RelyingParty) -> tuple[str, bytes]:
    """The ``PublicKeyCredentialCreationOptions`` (JSON text, binary fields base64url) for a new passkey of
    ``user`` and its challenge (to keep for ``register``). Gives ``user`` a user handle on first use; asks for a
    discoverable credential (so it can sign in alone) and excludes the passkeys ``user`` already has."""
    if user.webauthn_user_id is None:
        user.webauthn_user_id = secrets.token_bytes(32)
        db.session.commit()
    options = generate_registration_options(
        rp_id=rp.id, rp_name=rp.name, user_id=bytes(user.webauthn_user_id), user_name=user.username,
        user_display_name=user.username, timeout=TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED, user_verification=UserVerificationRequirement.PREFERRED),
        exclude_credentials=_descriptors(list_passkeys(user)))
    return options_to_json(options), options.challenge


def register(user: User, name: str, credential: str, challenge: bytes | None, rp: RelyingParty) -> Passkey:
    """Verify the browser's answer ``credential`` (the JSON of a ``PublicKeyCredential``) to ``challenge`` and
    store the new passkey of ``user`` as ``name`` (default "Passkey N"); records ``auth.2fa.passkey_added``.

    Raises ``PasskeyError`` (nothing stored) when there is no challenge, the answer does not verify, or the
    passkey is already registered.
    """
    if not challenge:
        raise PasskeyError("The passkey request expired. Please try again.")
    try:
        parsed = parse_registration_credential_json(credential)
        verified = verify_registration_response(credential=parsed, expected_challenge=challenge,
                                                expected_rp_id=rp.id, expected_origin=rp.origin)
    except WebAuthnException as exc:
        raise PasskeyError(f"The passkey could not be verified ({exc}).") from exc
    if db.session.scalar(db.select(Passkey.id).filter_by(credential_id=verified.credential_id)):
        raise PasskeyError("This passkey is already registered.")
    name = (name or "").strip()[:NAME_LENGTH] or f"Passkey {twofactor.passkey_count(user) + 1}"
    passkey = Passkey(user_id=user.id, name=name, credential_id=verified.credential_id,
                      public_key=verified.credential_public_key, sign_count=verified.sign_count,
                      transports=[item.value for item in parsed.response.transports or ()] or None)
    db.session.add(passkey)
    audit.record("auth.2fa.passkey_added", user=user, target=name)
    db.session.commit()
    return passkey


def authentication_options(rp: RelyingParty, user: User | None = None) -> tuple[str, bytes]:
    """The ``PublicKeyCredentialRequestOptions`` (JSON text) and challenge for signing in: with ``user``, one of
    their passkeys (the second step after the password); without, any discoverable passkey, user verified."""
    options = generate_authentication_options(
        rp_id=rp.id, timeout=TIMEOUT_MS,
        allow_credentials=_descriptors(list_passkeys(user)) if user is not None else [],
        user_verification=(UserVerificationRequirement.PREFERRED if user is not None
                           else UserVerificationRequirement.REQUIRED))
    return options_to_json(options), options.challenge


def authenticate(credential: str, challenge: bytes | None, rp: RelyingParty, user: User | None = None) -> Passkey:
    """The passkey that signed ``challenge`` in ``credential`` (JSON of a ``PublicKeyCredential``), its signature
    counter and last use updated. With ``user``: it must be theirs; without: it must carry its user's handle and
    have verified the user.

    Raises ``PasskeyError`` when there is no challenge, the passkey is unknown or someone else's, its user is
    disabled, or the signature does not verify.
    """
    if not challenge:
        raise PasskeyError("The passkey request expired. Please try again.")
    try:
        parsed = parse_authentication_credential_json(credential)
    except WebAuthnException as exc:
        raise PasskeyError(f"The passkey answer could not be read ({exc}).") from exc
    passkey = db.session.scalar(db.select(Passkey).filter_by(credential_id=parsed.raw_id))
    if passkey is None or (user is not None and passkey.user_id != user.id):
        raise PasskeyError("This passkey is not registered for this account." if user is not None
                           else "This passkey is not registered with Proxboard.")
    owner = db.session.get(User, passkey.user_id)
    if user is None and (parsed.response.user_handle is None
                         or bytes(parsed.response.user_handle) != bytes(owner.webauthn_user_id or b"")):
        raise PasskeyError("This passkey is not registered with Proxboard.")
    if not owner.is_active:
        raise PasskeyError("This account is disabled.")
    try:
        verified = verify_authentication_response(
            credential=parsed, expected_challenge=challenge, expected_rp_id=rp.id, expected_origin=rp.origin,
            credential_public_key=bytes(passkey.public_key), credential_current_sign_count=passkey.sign_count,
            require_user_verification=user is None)
    except WebAuthnException as exc:
        raise PasskeyError(f"The passkey could not be verified ({exc}).") from exc
    passkey.sign_count = verified.new_sign_count
    passkey.last_used_at = utcnow()
    db.session.commit()
    return passkey


def owner(passkey: Passkey) -> User:
    """The user ``passkey`` belongs to."""
    return db.session.get(User, passkey.user_id)


def _own(user: User, passkey_id: int) -> Passkey:
    passkey = db.session.scalar(db.select(Passkey).filter_by(id=passkey_id, user_id=user.id))
    if passkey is None:
        raise PasskeyNotFound(passkey_id)
    return passkey


def rename(user: User, passkey_id: int, name: str) -> Passkey:
    """Rename one of ``user``'s passkeys; raises ``PasskeyNotFound`` when it is not theirs, ``ValueError`` for an
    empty name."""
    passkey = _own(user, passkey_id)
    name = (name or "").strip()[:NAME_LENGTH]
    if not name:
        raise ValueError("Give the passkey a name.")
    passkey.name = name
    db.session.commit()
    return passkey


def delete(user: User, passkey_id: int) -> str:
    """Remove one of ``user``'s passkeys (returns its name) and record ``auth.2fa.passkey_removed``; with no second
    factor left, the recovery codes go too.

    Raises ``PasskeyNotFound`` when it is not theirs, ``twofactor.SecondFactorStillRequired`` when it is the last
    second factor of a user who must use two-factor sign-in.
    """
    passkey = _own(user, passkey_id)
    left = twofactor.passkey_count(user) - 1
    if left == 0 and not twofactor.totp_enabled(user) and twofactor.second_factor_required(user):
        raise twofactor.SecondFactorStillRequired(
            "Two-factor sign-in is required for your account: set up an authenticator app or another passkey "
            "before removing this one.")
    name = passkey.name
    db.session.delete(passkey)
    if left == 0 and not twofactor.totp_enabled(user):
        db.session.execute(db.delete(RecoveryCode).filter_by(user_id=user.id))
    audit.record("auth.2fa.passkey_removed", user=user, target=name)
    db.session.commit()
    return name
