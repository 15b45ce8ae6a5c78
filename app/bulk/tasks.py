"""The jobs sweep of bulk actions: each running one moves on while nobody watches its progress."""
from __future__ import annotations

from app import jobs
from app.bulk.services import advance_all

jobs.sweep(advance_all)
