"""`sqllm serve` on loopback, driven by the official openai client (and raw HTTP for the requests a
client library would not send): completions and chat, plain and streamed, concurrent streams,
prefix reuse, stop strings, cancellation, and bad requests answered as OpenAI does."""

import json
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import pytest

from sqllm.runtime import Model

openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")

SLOTS = 2
NAME = "chat"


@dataclass
class Served:
    url: str
    proc: subprocess.Popen

    def client(self):
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="unused", max_retries=0, timeout=120)

    def health(self) -> dict:
        return httpx.get(f"{self.url}/health", timeout=10).json()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(chat_model):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "sqllm.runtime.serve_cli", "serve", str(chat_model), "--port",
                             str(port), "--parallel", str(SLOTS), "--threads", "1", "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the server did not start: {proc.communicate()[1]}")
        time.sleep(0.2)
    yield Served(url, proc)
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the server did not stop on SIGTERM")


@pytest.fixture(scope="module")
def local(chat_model):
    with Model(chat_model, threads=1) as m:
        yield m


SAMPLING = dict(temperature=0.8, top_p=0.95)  # and the defaults both share: top_k 40, min_p 0.05


def test_models_and_health(served):
    models = served.client().models.list()
    assert [m.id for m in models.data] == [NAME]
    assert served.health()["slots"] == SLOTS
    r = httpx.get(f"{served.url}/v1/models/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_completion_matches_sqrun(served, chat_model):
    """Same file, prompt and seed: the same text as sqrun, plain and streamed."""
    run = subprocess.run([sys.executable, "-m", "sqllm.runtime", str(chat_model), "-p", "Once upon a time", "-n", "40",
                          "--seed", "5", "--temp", "0.8", "-q"], capture_output=True, text=True, check=True)
    expected = run.stdout[len("Once upon a time"):-1]
    client = served.client()
    r = client.completions.create(model=NAME, prompt="Once upon a time", max_tokens=40, seed=5, **SAMPLING)
    assert r.choices[0].text == expected and len(expected) > 20
    assert r.usage.completion_tokens <= 40 and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.choices[0].finish_reason in ("stop", "length") and r.object == "text_completion"
    # The same prompt again finds its slot holding it: the kept prefix leaves the last prompt token to
    # the single-token kernels, whose logits differ from the batch's in the last bits, so the text is
    # a local model's second generation, which keeps its prefix the same way.
    with Model(chat_model, threads=1) as again:
        first = "".join(again.generate("Once upon a time", max_tokens=40, seed=5, **SAMPLING))
        second = "".join(again.generate("Once upon a time", max_tokens=40, seed=5, **SAMPLING))
    assert first == expected
    stream = client.completions.create(model=NAME, prompt="Once upon a time", max_tokens=40, seed=5, stream=True,
                                       **SAMPLING)
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks) == second
    assert chunks[-1].choices[0].finish_reason == r.choices[0].finish_reason


def test_chat_plain_and_streamed(served, local):
    messages = [{"role": "system", "content": "You tell stories."}, {"role": "user", "content": "A cat"}]
    expected = "".join(local.chat(messages, max_tokens=32, seed=11, **SAMPLING))
    client = served.client()
    r = client.chat.completions.create(model=NAME, messages=messages, max_tokens=32, seed=11, **SAMPLING)
    assert r.choices[0].message.role == "assistant" and r.choices[0].message.content == expected
    assert r.usage.prompt_tokens == len(local.chat_tokens(messages))  # one BOS: the template writes it
    # Asked again, the slot keeps the prompt's prefix, as the local model does (see above).
    again = "".join(local.chat(messages, max_tokens=32, seed=11, **SAMPLING))
    stream = client.chat.completions.create(model=NAME, messages=messages, max_tokens=32, seed=11, stream=True,
                                            stream_options={"include_usage": True}, **SAMPLING)
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == again
    assert chunks[-1].usage.completion_tokens == r.usage.completion_tokens


def test_eight_concurrent_streams(served, local):
    """More requests than slots: all complete, each with its own seed's text."""
    prompts = [(f"Once upon a time{' there was' if i % 2 else ''}", 100 + i) for i in range(8)]
    expected = ["".join(local.generate(p, max_tokens=48, seed=seed, **SAMPLING)) for p, seed in prompts]
    got = [None] * 8
    errors = []

    def one(i):
        try:
            stream = served.client().completions.create(model=NAME, prompt=prompts[i][0], max_tokens=48,
                                                        seed=prompts[i][1], stream=True, **SAMPLING)
            got[i] = "".join(c.choices[0].text for c in stream)
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and got == expected


def test_prefix_reuse(served):
    client = served.client()
    history = [{"role": "user", "content": "Once upon a time there was a dog named Max."}]
    first = client.chat.completions.create(model=NAME, messages=history, max_tokens=16, seed=1, temperature=0)
    history += [{"role": "assistant", "content": first.choices[0].message.content},
                {"role": "user", "content": "What did Max do?"}]
    second = client.chat.completions.create(model=NAME, messages=history, max_tokens=16, seed=1, temperature=0)
    assert second.usage.prompt_tokens_details.cached_tokens >= first.usage.prompt_tokens - 1


def test_stop_strings(served):
    client = served.client()
    full = client.completions.create(model=NAME, prompt="Once upon a time", max_tokens=60, temperature=0).choices[0]
    word = full.text.split()[3]
    cut = client.completions.create(model=NAME, prompt="Once upon a time", max_tokens=60, temperature=0,
                                    stop=["zzz", word]).choices[0]
    assert cut.text == full.text[:full.text.index(word)] and cut.finish_reason == "stop"
    streamed = client.completions.create(model=NAME, prompt="Once upon a time", max_tokens=60, temperature=0,
                                         stop=word, stream=True)
    assert "".join(c.choices[0].text for c in streamed) == cut.text


def test_a_client_that_disconnects_cancels_its_generation(served):
    before = served.health()
    with httpx.stream("POST", f"{served.url}/v1/completions", timeout=60,
                      json={"model": NAME, "prompt": "Once upon a time", "max_tokens": 480, "temperature": 0,
                            "stream": True}) as r:
        lines = r.iter_lines()
        assert next(lines).startswith("data: ")
    deadline = time.monotonic() + 30
    while True:
        h = served.health()
        if h["slots_idle"] == SLOTS and h["requests"] > before["requests"]:
            break
        assert time.monotonic() < deadline, h
        time.sleep(0.05)
    assert h["cancelled"] == before["cancelled"] + 1
    assert h["generated_tokens"] - before["generated_tokens"] < 480


def post(served, path: str, body, *, raw: bool = False):
    content = body if raw else json.dumps(body)
    return httpx.post(f"{served.url}{path}", content=content, headers={"Content-Type": "application/json"}, timeout=30)


LONG = "Once upon a time " * 200


@pytest.mark.parametrize("path, body, status, words", [
    ("/v1/completions", b'{"prompt": "x", ', 400, "JSON"),
    ("/v1/completions", b"[1, 2]", 400, "dictionary"),
    ("/v1/completions", {"model": "gpt-4", "prompt": "x"}, 404, "does not exist"),
    ("/v1/completions", {"prompt": LONG}, 400, "maximum context length"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": LONG}]}, 400, "maximum context length"),
    ("/v1/completions", {"prompt": "x", "max_tokens": -1}, 400, "max_tokens"),
    ("/v1/completions", {"prompt": "x", "temperature": "hot"}, 400, "temperature"),
    ("/v1/completions", {"prompt": "x", "temperature": -1}, 400, "temperature"),
    ("/v1/completions", {"prompt": "x", "top_p": 0}, 400, "top-p"),
    ("/v1/completions", {"prompt": "x", "max_tokens": "ten"}, 400, "max_tokens"),
    ("/v1/completions", {"prompt": 7}, 400, "prompt"),
    ("/v1/completions", {"prompt": [1, 99999]}, 400, "token ids"),
    ("/v1/completions", {}, 400, "prompt"),
    ("/v1/completions", {"prompt": "x", "n": 2}, 400, "n:"),
    ("/v1/completions", {"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    ("/v1/completions", {"prompt": "x", "stream": "yes"}, 400, "stream"),
    ("/v1/chat/completions", {"messages": []}, 400, "messages"),
    ("/v1/chat/completions", {"messages": "hi"}, 400, "messages"),
    ("/v1/chat/completions", {"messages": [{"role": "robot", "content": "hi"}]}, 400, "role"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, 400, "text"),
    ("/v1/nothing", {}, 404, "Not Found"),
])
def test_bad_requests_get_openai_errors(served, path, body, status, words):
    r = post(served, path, body, raw=isinstance(body, bytes))
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert words in error["message"] and error["type"] and "message" in error
    assert served.health()["status"] == "ok"


def test_bad_requests_through_the_client(served):
    client = served.client()
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="maximum context length"):
        client.completions.create(model=NAME, prompt=LONG)
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client.completions.create(model=NAME, prompt="x", max_tokens=-5)
