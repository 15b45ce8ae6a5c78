"""Templates: reusable container recipes (resources, features, scripts, files, packages, services)."""
from app.container_templates.helpers import script_with_helpers

__all__ = ["script_with_helpers"]
