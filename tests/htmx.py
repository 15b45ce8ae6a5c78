"""Helpers for talking to the app the way its htmx pages do."""
from __future__ import annotations

import json
import time

HX = {"HX-Request": "true"}


def toast_of(response) -> dict:
    """The toast an htmx response asks the page to show (``HX-Trigger``), or {}."""
    return json.loads(response.headers["HX-Trigger"]).get("toast", {})


def wait_operation(client, vmid: int, operation_id: int, view: str = "card", timeout: float = 10):
    """Poll like a spinner does until the operation ends; returns the last response."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/containers/{vmid}/operations/{operation_id}?view={view}", headers=HX)
        if response.status_code != 204:
            return response
        time.sleep(0.1)
    raise AssertionError("operation did not end")
