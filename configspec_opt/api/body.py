"""Reading a spec or a profile upload from a request, within limits.

The body is read as a stream and refused as soon as it passes the size
limit (413), before anything parses it.  Content types: JSON
(`application/json`) or YAML (`application/yaml`, `application/x-yaml`,
`text/yaml`, `text/x-yaml`); anything else is a 415 that says how to send
it.  A body without a Content-Type is a 415 too: a web page can send one
without a CORS preflight (`fetch` with an untyped Blob), so sniffing it
would let any site a user visits write here; and a client that says what it
sends is never misread.  Text must be UTF-8.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from configspec_opt.api.problem import ApiProblem

JSON_TYPES = frozenset({"application/json"})
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
CHARSETS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})


@dataclass(frozen=True)
class TextBody:
    """A request body decoded as UTF-8 text, and the media type it was declared as.

    `media_type` is None only for an empty body sent without a Content-Type.
    """

    text: str
    media_type: str | None


def media_type(header: str | None) -> str | None:
    """The accepted media type of a Content-Type header, or a 415 problem."""
    if header is None or not header.strip():
        return None
    kind, *params = (part.strip() for part in header.split(";"))
    kind = kind.lower()
    if kind not in JSON_TYPES | YAML_TYPES:
        raise ApiProblem(415, "unsupported-media-type", "Unsupported media type",
                         f"cannot read a body of type '{kind}': send the spec as "
                         "application/yaml or application/json (with curl: "
                         "-H 'Content-Type: application/yaml' --data-binary @spec.yaml)")
    for p in params:
        name, _, value = p.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in CHARSETS:
            raise ApiProblem(415, "unsupported-media-type", "Unsupported charset",
                             f"charset '{value.strip()}' is not supported: send UTF-8")
    return kind


def too_large(limit: int) -> ApiProblem:
    """413 for a body past `limit` bytes, naming the option that raises it."""
    return ApiProblem(413, "body-too-large", "Request body too large",
                      f"the body is larger than this server's limit of {limit:,} bytes "
                      "(configspec serve --max-body)", limit_bytes=limit)


def no_media_type() -> ApiProblem:
    """415 for a body without a Content-Type (the module docstring says why none is guessed)."""
    return ApiProblem(415, "unsupported-media-type", "Content-Type required",
                      "the request has a body but no Content-Type: send the spec as "
                      "application/yaml or application/json (with curl: "
                      "-H 'Content-Type: application/yaml' --data-binary @spec.yaml)")


async def read_text(request: Request, limit: int) -> TextBody:
    """Read the whole body as text, refusing it (413/415/400) before anything parses it.

    The size limit is checked against Content-Length first and again while
    streaming, so a lying or absent length cannot make the server buffer more
    than `limit` bytes.
    """
    kind = media_type(request.headers.get("content-type"))
    declared = request.headers.get("content-length")
    if kind is None and (declared not in (None, "0")
                         or "transfer-encoding" in request.headers):
        raise no_media_type()
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    raw = b"".join(chunks)
    if kind is None and raw:
        raise no_media_type()
    if not raw.strip():
        raise ApiProblem(400, "empty-body", "Empty request body",
                         "the request has no body: send a spec as YAML or JSON")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApiProblem(400, "bad-encoding", "Body is not UTF-8",
                         f"byte {exc.start} is not valid UTF-8; send the spec as UTF-8 "
                         "text") from None
    if "\x00" in text:
        raise ApiProblem(400, "bad-encoding", "Body is not text",
                         "the body contains NUL characters; send the spec as text")
    return TextBody(text, kind)
