"""YAML for generated files that are committed: the same data gives the same bytes.

A lock file is reviewed as a text diff and compared byte for byte, so its
writer must not depend on anything but the data: keys keep insertion order,
floats are rounded to FLOAT_DIGITS significant digits and written as the
shortest text that reads back as that value, `None` is written `null`, and
strings that a YAML 1.1 reader (PyYAML, many CI bots) would take for a
boolean or a number are quoted.
"""

from __future__ import annotations

import io
import math
import re
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.emitter import RoundTripEmitter
from ruamel.yaml.representer import RoundTripRepresenter

from configspec_opt.safe_text import one_line

FLOAT_DIGITS = 10
"""Significant digits kept for every float in a generated file."""

# Plain scalars that YAML 1.1 resolves to booleans or null; 1.2 readers do not.
_YAML11_SPECIAL = re.compile(
    r"^(y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF|~|null|Null|NULL"
    r"|true|True|TRUE|false|False|FALSE)$")
_UNSAFE_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]")
_NUMBER_LIKE = re.compile(r"^[-+]?(\.?[0-9][0-9_.:eE+-]*|\.inf|\.nan)$", re.IGNORECASE)


def round_float(x: float, digits: int = FLOAT_DIGITS) -> float:
    """`x` to `digits` significant digits (the value a generated file holds)."""
    if not math.isfinite(x) or x == 0.0:
        return x
    r = float(f"{x:.{digits}g}")
    return r if math.isfinite(r) else x  # rounding up near the largest float overflows


def rounded(obj: Any, digits: int = FLOAT_DIGITS) -> Any:
    """A copy of plain data with every float rounded by `round_float`."""
    if isinstance(obj, bool) or obj is None:
        return obj
    if isinstance(obj, float):
        return round_float(obj, digits)
    if isinstance(obj, dict):
        return {k: rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [rounded(v, digits) for v in obj]
    return obj


def _float_text(x: float) -> str:
    if not math.isfinite(x):
        raise ValueError(f"{x!r} cannot be written to a generated file")
    text = repr(x)
    mantissa, e, exponent = text.partition("e")
    if e and "." not in mantissa:  # 1e-05 is a string to YAML 1.1; 1.0e-05 is not
        text = f"{mantissa}.0e{exponent}"
    return text


class SafeEmitter(RoundTripEmitter):
    """ruamel's emitter with the quoting every YAML reader agrees on.

    ruamel writes YAML 1.2, where a plain scalar may hold `:` and `?` inside a flow
    collection (`{endpoint: javascript:alert(1)}`); libyaml, and so ruamel's own C
    loader and PyYAML, refuse those, so such a scalar is quoted there.  A scalar with
    a control character or a Unicode line break is written double-quoted, the one
    style that escapes it (a plain or single-quoted NEL is folded to a space on reading).
    """

    def analyze_scalar(self, scalar: Any) -> Any:
        """ruamel's analysis, with the styles above ruled out where they are unsafe."""
        analysis = super().analyze_scalar(scalar)
        if ":" in scalar or "?" in scalar:
            analysis.allow_flow_plain = False
        if _UNSAFE_CHARS.search(scalar):
            analysis.allow_flow_plain = analysis.allow_block_plain = False
            analysis.allow_single_quoted = analysis.allow_block = False
        return analysis


class _Representer(RoundTripRepresenter):
    def represent_none(self, data: Any) -> Any:
        return self.represent_scalar("tag:yaml.org,2002:null", "null")

    def represent_float(self, data: Any) -> Any:
        return self.represent_scalar("tag:yaml.org,2002:float", _float_text(float(data)))

    def represent_str(self, data: Any) -> Any:
        if _UNSAFE_CHARS.search(data):  # line breaks YAML folds (NEL, LS, PS), controls
            return self.represent_scalar("tag:yaml.org,2002:str", data, style='"')
        if _YAML11_SPECIAL.match(data) or _NUMBER_LIKE.match(data):
            return self.represent_scalar("tag:yaml.org,2002:str", data, style="'")
        return super().represent_str(data)


_Representer.add_representer(type(None), _Representer.represent_none)
_Representer.add_representer(float, _Representer.represent_float)
_Representer.add_representer(str, _Representer.represent_str)


def dump_yaml(data: Any, header: str = "") -> str:
    """Block-style YAML of plain data (dicts, lists, str, int, float, bool, None), which
    every YAML reader reads back as `data` whatever its strings hold (`SafeEmitter`).

    `header` lines are written as `#` comments before the document, each one line
    whatever it quotes (`one_line`: a name or file name cannot end the comment).
    """
    yaml = YAML(typ="rt")
    yaml.Representer = _Representer
    yaml.Emitter = SafeEmitter
    yaml.default_flow_style = False
    yaml.width = 4096  # never fold a line: a fold would depend on the value's length
    yaml.indent(mapping=2, sequence=4, offset=2)
    buf = io.StringIO()
    yaml.dump(rounded(data), buf)
    lines = header.removesuffix("\n").split("\n") if header else []
    comment = "".join(f"# {one_line(line)}".rstrip() + "\n" for line in lines)
    return comment + buf.getvalue()
