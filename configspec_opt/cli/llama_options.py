"""Options shared by the commands that run llama.cpp (profile, trial): one meaning each."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

PromptsOpt = Annotated[Path | None, typer.Option(
    "--prompts", help="Prompt file: text (one a line), JSONL, or Dolly 15K JSONL.")]
SeedOpt = Annotated[int, typer.Option(help="Seed for sampled runs.")]
ThreadsOpt = Annotated[int, typer.Option(help="llama.cpp threads (0: all cores).", min=0)]
NCtxOpt = Annotated[int, typer.Option(help="Context size.", min=64)]
RepackOpt = Annotated[bool, typer.Option(
    help="Allow llama.cpp weight repacking (AMX/AVX extra buffers).")]
ChatOpt = Annotated[bool | None, typer.Option(
    "--chat/--no-chat", help="Wrap prompts in the model's chat template (default: when it "
    "has one).")]
