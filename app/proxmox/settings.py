"""Connection settings, read from the Flask config (``PROXBOARD_PVE_*`` env vars)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import ProxmoxConfigError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True, slots=True)
class ProxmoxSettings:
    """Where Proxmox is and how to log in. Secrets are kept out of ``repr``."""

    host: str
    user: str = "root@pam"
    port: int = 8006
    token_name: str | None = None
    token_value: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    verify_ssl: bool | str = True
    timeout: float = 10.0
    node: str | None = None
    cache_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not self.host:
            raise ProxmoxConfigError("PVE_HOST is not set")
        if not self.user:
            raise ProxmoxConfigError("PVE_USER is not set")
        if bool(self.token_name) != bool(self.token_value):
            raise ProxmoxConfigError("PVE_TOKEN_NAME and PVE_TOKEN_VALUE must be set together")
        if not self.token_name and not self.password:
            raise ProxmoxConfigError(
                "no Proxmox credentials: set PVE_TOKEN_NAME and PVE_TOKEN_VALUE, or PVE_PASSWORD"
            )
        if self.timeout <= 0:
            raise ProxmoxConfigError("PVE_TIMEOUT must be a positive number of seconds")
        if self.cache_seconds < 0:
            raise ProxmoxConfigError("PVE_CACHE_SECONDS must be 0 or more")
        if isinstance(self.verify_ssl, str) and not os.path.exists(self.verify_ssl):
            raise ProxmoxConfigError(f"PVE_VERIFY_SSL: CA bundle {self.verify_ssl!r} does not exist")

    @property
    def auth_method(self) -> Literal["token", "password"]:
        """``token`` when an API token is configured (preferred), else ``password``."""
        return "token" if self.token_name else "password"

    @property
    def address(self) -> str:
        """``host:port`` for messages; never includes credentials."""
        return f"{self.host}:{self.port}"

    def describe(self) -> str:
        """One line naming the connection and auth method, safe to print or log."""
        if self.auth_method == "token":
            how = f"API token {self.user}!{self.token_name}"
        else:
            how = f"password (ticket) for {self.user}"
        return f"https://{self.address} as {how}"

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ProxmoxSettings:
        """Build settings from Flask config keys, coercing strings from the environment."""
        token_name = _opt_str(config.get("PVE_TOKEN_NAME"))
        user = _opt_str(config.get("PVE_USER"))
        if token_name and "!" in token_name:
            # Accept the full token id "user@realm!name" as shown in the Proxmox GUI.
            token_user, token_name = token_name.split("!", 1)
            user = user or token_user
        return cls(
            host=_opt_str(config.get("PVE_HOST")) or "",
            user=user or "root@pam",
            port=_int(config.get("PVE_PORT"), "PVE_PORT", 8006),
            token_name=token_name,
            token_value=_opt_str(config.get("PVE_TOKEN_VALUE")),
            password=_opt_str(config.get("PVE_PASSWORD")),
            verify_ssl=read_verify_ssl(config.get("PVE_VERIFY_SSL")),
            timeout=_float(config.get("PVE_TIMEOUT"), "PVE_TIMEOUT", 10.0),
            node=_opt_str(config.get("PVE_NODE")),
            cache_seconds=_float(config.get("PVE_CACHE_SECONDS"), "PVE_CACHE_SECONDS", 5.0),
        )


def _opt_str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _int(value: Any, key: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ProxmoxConfigError(f"{key} must be an integer, got {value!r}") from None


def _float(value: Any, key: str, default: float) -> float:
    if value is None or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ProxmoxConfigError(f"{key} must be a number, got {value!r}") from None


def read_verify_ssl(value: Any) -> bool | str:
    """A ``PVE_VERIFY_SSL`` value (a bool, or text from the environment) as True, False or a CA bundle's path."""
    if value is None or value == "" or isinstance(value, bool):
        return True if value in (None, "") else value
    text = str(value).strip()
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    return text
