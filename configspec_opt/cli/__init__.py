"""The `configspec` command line (typer).

Each module of this package registers the commands of one capability on
`app`; this file only assembles them.
"""

from __future__ import annotations

from configspec_opt.cli import core as _core  # noqa: F401  (registers commands)
from configspec_opt.cli.app import app

for _optional in ("profile", "serve", "vcs", "trial", "profile_verifier", "fleet_trial", "db",
                  "ship", "worker", "group", "draft_client", "observe", "what_if"):
    try:
        __import__(f"configspec_opt.cli.{_optional}")
    except ModuleNotFoundError as _exc:  # a capability not in this build
        if _exc.name != f"configspec_opt.cli.{_optional}":
            raise


def main() -> None:
    """The `configspec` console script."""
    app()


__all__ = ["app", "main"]
