"""``/api/v1/operations/<id>``: an operation to poll until it ends (what the pages' spinners poll)."""
from __future__ import annotations

from werkzeug.exceptions import NotFound

from app.api import bp, schemas
from app.api.common import answer, operation_model
from app.api.spec import documented
from app.containers.services import refresh_operation
from app.extensions import db
from app.models import Operation


@bp.get("/operations/<int:operation_id>")
@documented("An operation: poll it until its state is succeeded or failed", tag="operations",
            responses={200: schemas.Operation})
def operation(operation_id: int):
    """The operation, settled first when its Proxmox task has ended (as the spinner's poll does)."""
    found = db.session.get(Operation, operation_id)
    if found is None:
        raise NotFound(f"There is no operation {operation_id}.")
    refresh_operation(found)
    return answer(operation_model(found))
