"""Prompts as the model is served: wrapped in its own chat template when it has one.

An instruct model's acceptance on a raw prompt is not its acceptance in
service (it may just continue the question), so an instruction is rendered
with the GGUF's `tokenizer.chat_template` (llama-cpp-python's Jinja2
formatter, sandboxed) as one user turn plus the generation prompt.  Models
without a template (base models, the generated test models) get the text
as it is.  The same rendered text is sent to a remote target, so draft and
target see identical bytes.
"""

from __future__ import annotations

from profiler.engine import Engine

TEMPLATE_KEY = "tokenizer.chat_template"


def has_template(engine: Engine) -> bool:
    """Whether the GGUF carries a chat template, so that prompts are rendered with it by default."""
    return bool(engine.metadata.get(TEMPLATE_KEY))


def render(engine: Engine, text: str, *, chat: bool | None = None) -> str:
    """The exact prompt text to send: templated when `chat` (default: if the model has one)."""
    use = has_template(engine) if chat is None else chat
    if not use:
        return text
    if not has_template(engine):
        from configspec_opt.errors import UsageError

        raise UsageError(f"--chat: {engine.path.name} has no chat template")
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    fmt = Jinja2ChatFormatter(
        template=engine.metadata[TEMPLATE_KEY],
        eos_token=engine.piece(engine.eos).decode("utf-8", "replace"),
        bos_token=engine.piece(engine.bos).decode("utf-8", "replace"),
    )
    return str(fmt(messages=[{"role": "user", "content": text}]).prompt)
