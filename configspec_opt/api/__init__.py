"""The HTTP service (`configspec serve`): FastAPI routers over the same core as the CLI.

Importing this package does not import FastAPI; `create_app` does, so the
pure modules here (params, spec_calls, tasks) load in solver worker
processes and on installs without the server extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from configspec_opt.api.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    """Build the service's FastAPI app; a thin door so importing the package needs no FastAPI."""
    from configspec_opt.api.app import create_app as _create

    return _create(settings)


__all__ = ["create_app"]
