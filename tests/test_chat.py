"""Chat templates: rendered as transformers' apply_chat_template renders them, in a sandbox that a
hostile template cannot leave, with one BOS at most; and multi-turn chat through Model.chat."""

import os
import subprocess
import sys

import pytest

from sqllm.errors import SqllmError
from sqllm.runtime import Model
from sqllm.runtime.chat import render_chat

# The templates of common families, as their tokenizer_config.json files spell them (abridged
# where the original only adds tool-calling branches).
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
QWEN2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}")
MISTRAL = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == "
    "'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are "
    "supported!') }}{% endif %}{% endfor %}")
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + "
    "'\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception("
    "'Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == "
    "'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + "
    "role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{'<start_of_turn>model\n'}}{% endif %}")
# Newer templates lean on loop controls, tojson and strftime_now.
TOOLS = (
    "{%- for message in messages %}{%- if message.role == 'system' %}{%- continue %}{%- endif %}"
    "{{- message.role }}: {{ message.content | tojson }}\n{%- endfor %}"
    "{{- 'today ' + strftime_now('%Y') }}{%- if add_generation_prompt %}assistant:{%- endif %}")

CONVERSATION = [{"role": "user", "content": "  Héllo, who are you? "}, {"role": "assistant", "content": "A model."},
                {"role": "user", "content": "Tell me a story about 猫 & <tags>."}]


@pytest.mark.parametrize("name, template, messages", [
    ("llama3", LLAMA3, [{"role": "system", "content": "Be brief."}] + CONVERSATION),
    ("qwen2", QWEN2, CONVERSATION),
    ("mistral", MISTRAL, CONVERSATION),
    ("chatml", CHATML, [{"role": "system", "content": "Be brief."}] + CONVERSATION),
    ("gemma", GEMMA, CONVERSATION),
    ("tools", TOOLS, [{"role": "system", "content": "x"}] + CONVERSATION),
])
@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_templates_render_as_transformers_does(name, template, messages, add_generation_prompt):
    chat_template_utils = pytest.importorskip("transformers.utils.chat_template_utils")
    theirs = chat_template_utils.render_jinja_template(
        [messages], chat_template=template, add_generation_prompt=add_generation_prompt, bos_token="<s>",
        eos_token="</s>")[0][0]
    ours = render_chat(template, messages, bos_token="<s>", eos_token="</s>", add_generation_prompt=add_generation_prompt)
    assert ours == theirs


def test_template_errors_are_sqllm_errors():
    with pytest.raises(SqllmError, match="Conversation roles must alternate"):
        render_chat(MISTRAL, [{"role": "assistant", "content": "x"}])
    with pytest.raises(SqllmError, match="TemplateSyntaxError"):
        render_chat("{% for %}", CONVERSATION)


HOSTILE = [
    # CVE-2024-34359's class: reach os through Python internals, run a command.
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{% for c in ().__class__.__base__.__subclasses__() %}{% if c.__name__ == 'catch_warnings' %}"
    "{{ c()._module.__builtins__['__import__']('os').system('touch {marker}') }}{% endif %}{% endfor %}",
    "{{ cycler.__init__.__globals__.os.system('touch {marker}') }}",
    "{{ joiner.__init__.__globals__['os'].popen('touch {marker}').read() }}",
    "{{ namespace.__init__.__globals__['os'].system('touch {marker}') }}",
    "{{ self._TemplateReference__context.cycler.__init__.__globals__.os.system('touch {marker}') }}",
    "{{ lipsum.__globals__['os'].system('touch {marker}') }}",
    "{{ messages.append(1) }}{{ messages.clear() }}",  # the immutable sandbox: no mutating the caller's data
    "{{ raise_exception.__globals__['os'].system('touch {marker}') }}",
]


@pytest.mark.parametrize("template", HOSTILE)
def test_a_hostile_template_cannot_touch_the_system(template, tmp_path):
    marker = tmp_path / "pwned"
    messages = [{"role": "user", "content": "hi"}]
    try:
        render_chat(template.replace("{marker}", str(marker)), messages)
    except SqllmError:
        pass  # refused: the sandbox's SecurityError (or an undefined attribute) as an SqllmError
    assert not marker.exists()
    assert messages == [{"role": "user", "content": "hi"}]


def test_bos_is_not_doubled(chat_model):
    with Model(chat_model) as m:
        ids = m.chat_tokens([{"role": "user", "content": "Hi"}])
        assert ids[0] == m.bos and ids[1] != m.bos
        assert ids == m.tokenize("user: Hi\nassistant:")


def test_multi_turn_chat_reuses_the_kv_cache(chat_model):
    """Turn two evaluates only what turn one did not hold, and answers as a fresh context would."""
    sampling = dict(max_tokens=24, temperature=0.0)
    with Model(chat_model) as m:
        history = [{"role": "user", "content": "Once upon a time"}]
        first = "".join(m.chat(history, **sampling))
        assert first and m.last_stats.cached_tokens == 0
        history += [{"role": "assistant", "content": first}, {"role": "user", "content": "And then?"}]
        second = "".join(m.chat(history, **sampling))
        turn_two = m.chat_tokens(history)
        assert m.last_stats.cached_tokens > len(m.chat_tokens(history[:1])) - 1
        assert m.last_stats.prompt_tokens == len(turn_two) - m.last_stats.cached_tokens
        with Model(chat_model) as fresh:
            assert "".join(fresh.chat(history, **sampling)) == second


def test_sqrun_chat_session(chat_model):
    """sqrun --chat without -p: a multi-turn session on stdin, /reset and /exit."""
    run = subprocess.run([sys.executable, "-m", "sqllm.runtime", str(chat_model), "--chat", "-n", "12", "--temp", "0",
                          "--system", "You tell stories."],
                         input="Once upon a time\nAnd then?\n/reset\nHello\n/exit\nnever read\n", capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("> ") >= 4 and "never read" not in run.stdout
    assert "(history cleared)" in run.stdout


def test_generate_stop_continue_repr_and_close(chat_model):
    """Model.generate(stop=...), continuing without a reset, repr, and `with` closing the model."""
    from sqllm.runtime.model import StopScanner

    with Model(chat_model) as m:
        full = "".join(m.generate("Once upon a time", max_tokens=40, temperature=0))
        word = full.split()[2]
        cut = "".join(m.generate("Once upon a time", max_tokens=40, temperature=0, stop=["@@", word]))
        assert cut == full[:full.index(word)] and m.last_stats.finish_reason == "stop"
        assert m.last_stats.end_reason == "stop_string" and m.last_stats.cached_tokens > 0
        held = m._ctx.n_past
        more = "".join(m.generate(" and", max_tokens=5, temperature=0, reset=False))
        assert more and m.last_stats.cached_tokens == 0 and m._ctx.n_past > held
        assert "llama" in repr(m) and "vocab 512" in repr(m)
        with pytest.raises(ValueError, match="stop must be a list of strings"):
            m.generate("x", stop=[1])
    assert "closed" in repr(m)
    # A stop string split across pieces is held back until it is known not to be one.
    scanner = StopScanner(["</end>"])
    assert scanner.push("text </e") == ("text ", False) and scanner.push("nd> more") == ("", True)
    scanner = StopScanner(["</end>"])
    assert scanner.push("a </e") == ("a ", False) and scanner.push("x") == ("</ex", False)
