"""atheris target: the chat-template renderer (sqllm.runtime.chat) on arbitrary templates and
messages, as a model file could carry them. An input either renders or raises SqllmError;
anything else is a crash. Seeds: corpus/chat_template (a template, a NUL, a message)."""

import sys

import jinja2.sandbox  # noqa: F401

from sqllm.errors import SqllmError
from sqllm.runtime.chat import render_chat


def one_input(data: bytes) -> None:
    template, _, message = data.decode("utf-8", "replace").partition("\0")
    try:
        render_chat(template, [{"role": "user", "content": message}, {"role": "assistant", "content": message[::-1]}],
                    bos_token="<s>", eos_token="</s>")
    except SqllmError:
        pass


if __name__ == "__main__":
    import atheris
    import jinja2.compiler
    import jinja2.filters
    import jinja2.lexer
    import jinja2.parser
    import jinja2.runtime
    import jinja2.sandbox

    import sqllm.runtime.chat as chat

    from atheris_instrument import instrument

    instrument(chat, jinja2.lexer, jinja2.parser, jinja2.compiler, jinja2.sandbox, jinja2.runtime, jinja2.filters)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
