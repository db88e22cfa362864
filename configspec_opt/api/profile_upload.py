"""Parsing `{"profiles": [...]}` uploads (JSON or YAML) into validated entries.

The same loader as specs (NaN/inf, alias bombs and nesting refused) and the
same located errors: `profiles[3].draft_tok_s` at line 40, column 18.
Several entries for one (device, draft, quant) in one upload are kept in
order; the later one is the newer.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError

from configspec_opt.api.tasks import REQUEST_NAME, check_json
from configspec_opt.errors import SpecError, SpecIssue
from configspec_opt.loader import Source, parse_data, validation_issues
from configspec_opt.spec import Profile

_profiles: TypeAdapter[list[Profile]] = TypeAdapter(list[Profile])
SHAPE = 'an upload is a mapping with one key, profiles: {"profiles": [<profile>, ...]}'


def parse_upload(text: str, media_type: str | None) -> list[dict[str, Any]]:
    """Validated profile entries as JSON-ready dicts, or a SpecError with locations."""
    check_json(text, media_type)
    src = Source(REQUEST_NAME, text, received=True)
    data = parse_data(src)
    if not isinstance(data, dict) or set(data) != {"profiles"}:
        extra = sorted(str(k) for k in data) if isinstance(data, dict) else []
        raise SpecError([SpecIssue(SHAPE, file=REQUEST_NAME, line=1, column=1,
                                   hint=f"unexpected keys: {', '.join(extra)}" if extra
                                   else None)])
    items = data["profiles"]
    if not isinstance(items, list) or not items:
        raise SpecError([SpecIssue("profiles must be a non-empty list of profile entries",
                                   ("profiles",), REQUEST_NAME, 1, 1)])
    try:
        profiles = _profiles.validate_python(items)
    except ValidationError as exc:
        raise SpecError(validation_issues(exc, src, None, ("profiles",))) from None
    return [p.model_dump(mode="json", exclude_none=True) for p in profiles]
