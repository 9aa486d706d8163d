"""The MIME package of an ebXML message: multipart/related, its start part, charsets and Content-Ids."""

from __future__ import annotations

from sandbox.conformance.checks import CheckContext, RequestView
from sandbox.conformance.findings import Finding
from sandbox.services.spine import errors
from sandbox.services.spine.checks.common import checks, content_type, message


@checks.register("SPINE-MIME-001", "SPINE-MIME-002", "SPINE-MIME-003", "SPINE-MIME-004", "SPINE-MIME-006")
def mime_structure(req: RequestView, ctx: CheckContext):
    inbound = message(ctx)
    if inbound.transport != "ebxml":
        return
    where = "header:Content-Type"
    media = inbound.content_type.split(";")[0].strip().lower()
    if inbound.kind != "message":
        if media not in ("text/xml", "multipart/related"):
            yield Finding.failed("SPINE-MIME-001", f"An ebXML {inbound.kind} is sent as text/xml (or in a "
                                 f"multipart/related package); the Content-Type is {media or '(none)'!r}.", where)
        return
    if media != "multipart/related":
        yield Finding.failed("SPINE-MIME-001", f"An ebXML message is a multipart/related MIME package; the "
                             f"Content-Type is {media or '(none)'!r}.", where,
                             reject=errors.message_error("MimeProblem", "Content-Type must be multipart/related",
                                                         where))
        return
    holder = content_type(inbound.content_type)
    if holder is None or not holder.get_param("boundary"):
        yield Finding.failed("SPINE-MIME-001", "The multipart/related Content-Type has no boundary parameter.",
                             where, reject=errors.message_error("MimeProblem", "No MIME boundary", where))
        return
    yield Finding.passed("SPINE-MIME-001", "The message is multipart/related with a boundary.", where)
    mime_type = str(holder.get_param("type") or "")
    if mime_type.lower() == "text/xml":
        yield Finding.passed("SPINE-MIME-002", 'The Content-Type has type="text/xml".', where)
    else:
        yield Finding.failed("SPINE-MIME-002", f'The Content-Type must have type="text/xml" (the ebXML header '
                             f"part's type); it has {mime_type or 'no type parameter'!r}.", where)
    start = str(holder.get_param("start") or "").strip("<>")
    parts = inbound.ebxml.parts if inbound.ebxml is not None else ()
    if start and parts and parts[0].content_id == start:
        yield Finding.passed("SPINE-MIME-002", f"start=<{start}> names the ebXML header part.", where)
    if not parts:
        return
    first = parts[0]
    if first.content_type == "text/xml" and first.content_id:
        yield Finding.passed("SPINE-MIME-003", f"MIME part 1 is the ebXML header (text/xml, <{first.content_id}>).",
                             "MIME part 1")
    charsets_ok = True
    for index, part in enumerate(parts, start=1):
        if part.content_type in ("text/xml", "application/xml") and part.charset and \
                part.charset.lower() not in ("utf-8", "utf8"):
            charsets_ok = False
            yield Finding.failed("SPINE-MIME-004", f"MIME part {index} is {part.charset}; Spine messages are UTF-8.",
                                 f"MIME part {index} header:Content-Type")
        elif part.content_type == "text/xml" and not part.charset:
            charsets_ok = False
            yield Finding.warning("SPINE-MIME-004", f"MIME part {index} is text/xml without a charset: declare "
                                  "charset=UTF-8 (without it, text/xml defaults to US-ASCII).",
                                  f"MIME part {index} header:Content-Type")
    if charsets_ok and not any(p.code in ("ebxml.payload-content-type", "mime.unknown-charset")
                               for p in inbound.ebxml.header.problems):
        yield Finding.passed("SPINE-MIME-004", "The XML parts are UTF-8 and the HL7 payload is XML.", "MIME parts")
    ids = [p.content_id for p in parts if p.content_id]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    missing = [n for n, p in enumerate(parts, start=1) if not p.content_id]
    for index in missing:
        yield Finding.failed("SPINE-MIME-006", f"MIME part {index} has no Content-Id, so the manifest cannot "
                             "reference it.", f"MIME part {index}")
    for duplicate in duplicates:
        yield Finding.failed("SPINE-MIME-006", f"Content-Id <{duplicate}> names more than one MIME part.",
                             "MIME parts")
    if not missing and not duplicates:
        yield Finding.passed("SPINE-MIME-006", f"Each of the {len(parts)} MIME parts has its own Content-Id.")
