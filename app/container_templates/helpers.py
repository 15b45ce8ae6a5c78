"""The shell library every template script runs with."""
from __future__ import annotations

from functools import cache
from pathlib import Path

LIBRARY_PATH = Path(__file__).resolve().parent / "shell" / "proxboard-lib.sh"


@cache
def helper_library() -> str:
    """The text of ``proxboard-lib.sh``."""
    return LIBRARY_PATH.read_text(encoding="utf-8")


def script_with_helpers(script_content: str) -> str:
    """``script_content`` with the helper library prepended, ready for ``bash -s``."""
    body = script_content.removeprefix("#!/bin/bash\n").removeprefix("#!/usr/bin/env bash\n")
    shebang_removed = body != script_content

    def prefix(offset: int) -> str:
        return f"#!/usr/bin/env bash\nPROXBOARD_LINE_OFFSET={offset}\n{helper_library()}\n# --- template script ---\n"

    # Error lines then count from the template script's own first line (its shebang, if it had one).
    offset = prefix(0).count("\n") - (1 if shebang_removed else 0)
    return prefix(offset) + body
