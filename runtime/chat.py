"""Rendering a model's chat template (Jinja, as Hugging Face `transformers` renders it) into a prompt.

The template comes from the model file, so it is untrusted: it runs in Jinja's immutable
sandbox, and whatever goes wrong while compiling or rendering it is a SqllmError naming the
template, never another exception. The environment is `apply_chat_template`'s: trim_blocks and
lstrip_blocks, loop controls, a `tojson` that keeps non-ASCII text, `raise_exception`,
`strftime_now`, and the `{% generation %}` tag (rendered as its body).
"""

from __future__ import annotations

import json
from datetime import datetime

from sqllm.errors import SqllmError


def _environment():
    import jinja2.ext
    import jinja2.nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class GenerationTag(jinja2.ext.Extension):
        """{% generation %}...{% endgeneration %}: transformers marks assistant text with it."""

        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller):
            return caller()

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTag, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["strftime_now"] = lambda format: datetime.now().strftime(format)
    return env


def render_chat(template: str, messages: list[dict], *, bos_token: str = "", eos_token: str = "",
                add_generation_prompt: bool = True, source: str = "chat template", **variables) -> str:
    """The text of `messages` through `template`; `variables` (tools, documents, ...) are passed
    to the template as they are."""
    env = _environment()

    def raise_exception(message):
        raise SqllmError(f"{source}: {message}")

    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                                bos_token=bos_token, eos_token=eos_token, **variables)
    except SqllmError:
        raise
    except Exception as e:  # the template is arbitrary code: any failure of it is the file's
        raise SqllmError(f"{source}: {type(e).__name__}: {e}") from e
