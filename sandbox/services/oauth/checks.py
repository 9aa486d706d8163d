"""Identity service request checks: each endpoint's rules run as one ordered chain (see grants and authorize)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from flask import request

from sandbox.conformance.checks import CheckSet, RequestView
from sandbox.runtime import current_sandbox
from sandbox.services.oauth import authorize, grants
from sandbox.services.oauth.rules import RuleLog

checks = CheckSet("oauth")


def parse_form(body: bytes) -> dict[str, str]:
    form: dict[str, str] = {}
    for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        form.setdefault(key, value)  # the first value of a repeated parameter, as the gateway reads it
    return form


def audiences(req: RequestView) -> list[str]:
    """The token URL a client may name in aud: the URL it called, and the sandbox's configured public URL."""
    found = [request.base_url]
    public = current_sandbox().settings.public_url
    if public:
        found.append(public.rstrip("/") + req.path)
    return found


@checks.register(*grants.RULES, operations=("token",))
def token_request(req: RequestView, ctx):
    log = RuleLog()
    form = parse_form(req.body) if req.content_type == grants.FORM else {}
    # The handler issues what was granted; facts are shared with it through the exchange.
    ctx.facts["grant"] = grants.judge_token_request(log, req.content_type, form, audiences(req),
                                                    current_sandbox().store)
    return log.findings


@checks.register(*authorize.RULES, operations=("authorize",))
def authorize_request(req: RequestView, ctx):
    log = RuleLog()
    args = {key: values[0] for key, values in req.query.items() if values}
    ctx.facts["application"] = authorize.judge_authorize(log, args, current_sandbox().store)
    return log.findings
