"""Rendering a model's chat template (Jinja, as Hugging Face tokenizers do) into a prompt.

The template comes from the model file, so it is untrusted: it runs in Jinja's immutable
sandbox, and whatever goes wrong while compiling or rendering it is a SqllmError naming the
template, never another exception.
"""

from __future__ import annotations

from sqllm.errors import SqllmError


def render_chat(template: str, messages: list[dict], *, bos_token: str = "", eos_token: str = "",
                add_generation_prompt: bool = True, source: str = "chat template") -> str:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise SqllmError(f"{source}: {message}")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                                bos_token=bos_token, eos_token=eos_token)
    except SqllmError:
        raise
    except Exception as e:  # the template is arbitrary code: any failure of it is the file's
        raise SqllmError(f"{source}: {type(e).__name__}: {e}") from e
