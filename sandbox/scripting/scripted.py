"""Fixed-shape answers and faults: a scenario's error or body (templated from the request), a delay, a malformed reply."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from flask import Response
from jinja2.sandbox import SandboxedEnvironment

from sandbox.conformance.checks import RequestView
from sandbox.conformance.findings import SpineError
from sandbox.scripting.scenarios import Scenario

_JINJA = SandboxedEnvironment(autoescape=False)


def template_context(request: RequestView) -> dict:
    return {
        "params": request.params,
        "query": {k: v[0] for k, v in request.query.items() if v},
        "headers": {k.lower(): v for k, v in request.headers},
        "now": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def render(value, context: dict):
    """Render every string inside a JSON-like value as a template ({{ params.id }}, {{ headers['x-request-id'] }})."""
    if isinstance(value, str):
        return _JINJA.from_string(value).render(context) if "{{" in value or "{%" in value else value
    if isinstance(value, list):
        return [render(v, context) for v in value]
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    return value


def scripted_response(scenario: Scenario, service, request: RequestView) -> Response:
    spec = scenario.response
    context = template_context(request)
    headers = {k: str(render(str(v), context)) for k, v in spec.get("headers", {}).items()}
    if "error" in spec:
        error = spec["error"]
        raise SpineError(spec.get("status", 400), error["code"], render(error.get("diagnostics", ""), context),
                         display=error.get("display", ""), issue_code=error.get("issue_code", "invalid"),
                         headers=headers)
    body = render(spec.get("body"), context)
    content_type = spec.get("content_type", "application/json")
    data = body if isinstance(body, str) else ("" if body is None else json.dumps(body, indent=2))
    return Response(data, status=spec.get("status", 200), headers=headers, content_type=content_type)


def apply_fault(spec: dict, response: Response) -> Response:
    """A malformed reply: the body cut off half-way, as a dropped connection or a broken proxy leaves it."""
    if spec.get("malformed"):
        data = response.get_data()
        response.set_data(data[: max(1, len(data) // 2)])
    return response
