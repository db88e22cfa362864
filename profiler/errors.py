"""Errors a user can fix on the edge: each message says what to do next.

They subclass `ConfigspecError`, so the CLI prints them without a traceback
and exits with `exit_code`.
"""

from __future__ import annotations

from configspec_opt.errors import ConfigspecError


class ProfilerError(ConfigspecError):
    """Base of every profiler problem a user can act on."""

    exit_code = 4


class ModelFileError(ProfilerError):
    """A GGUF path that is missing, unreadable or not a model llama.cpp can load."""


class TokenizerMismatchError(ProfilerError):
    """Draft and target do not share a tokenizer, so acceptance is meaningless."""


class EndpointError(ProfilerError):
    """A remote target (or the push URL) is down, slow, or answers nonsense."""


class PowerSourceError(ProfilerError):
    """A power source exists but cannot be read (permissions, odd format)."""
