"""Every ``/api/v1`` operation against its own OpenAPI document, with Schemathesis: requests generated from the
document hit the live app (WSGI, the simulator behind it) on SQLite and PostgreSQL, and every answer must be no
server error and match the document (status code, content type, headers and body schema).

Kept fast: a fixed number of examples per operation (``EXAMPLES``), derandomized so a failure replays the same.
"""
from __future__ import annotations

import contextvars

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.auth import tokens
from app.extensions import db
from app.models import Operation
from tests.fixtures.clusters import register_cluster

EXAMPLES = 25  # per operation; 17 operations (6 of them a non-default cluster's), two databases: about 15 s each
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


def test_every_operation_answers_as_its_document_says(app, make, pve, tmp_path):
    admin = make.user("schemathesis", role="admin")  # every operation allowed: the roles have their own tests
    register_cluster(app, pve, "lab", tmp_path)  # a second cluster (the same Proxmox) for the /clusters/… addresses
    headers = {"Authorization": f"Bearer {tokens.create_token(admin, 'schemathesis', 'admin')[1]}"}
    make.template("web", tags="web")
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 17

    template_id = make.template("db").id
    for operation in operations:
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=True,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(), known=st.booleans(), pick=st.integers(0, 10**6))
        def answers_as_documented(case, known, pick):
            if known:  # half the ids name something that exists: a random id is almost always a 404
                existing = {"vmid": sorted(pve.containers), "template_id": [template_id], "cluster": ["lab"],
                            "operation_id": db.session.scalars(db.select(Operation.id)).all()}
                for name, ids in existing.items():
                    if name in (case.path_parameters or {}) and ids:
                        case.path_parameters[name] = ids[pick % len(ids)]
            # Each request in a context of its own, as a real server gives it (the test keeps an app context).
            contextvars.Context().run(case.call_and_validate, headers=headers, checks=CHECKS)

        answers_as_documented()
