"""`sqllm serve`: an OpenAI-compatible HTTP server over one mapped .sqf model.

N slots (contexts) share the model; a request takes the free slot whose held sequence shares the
longest prefix with its prompt (that prefix's KV cache is kept), or waits in a queue for one.
Each token is computed in a worker thread with the GIL released, so the event loop keeps
serving while slots generate; a client that disconnects stops its generation at the next token.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Iterator, Literal, Optional, Union

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from sqllm.errors import InvalidArgumentError, SqllmError

from .model import GenerationStats, Model, ctx_size_warning

MAX_STOP_STRINGS = 4


class ApiError(Exception):
    """An error answered as OpenAI does: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def response(self) -> JSONResponse:
        return JSONResponse({"error": {"message": self.message, "type": self.type, "param": self.param,
                                       "code": self.code}}, status_code=self.status)


class Sampling(BaseModel):
    """The sampling fields both endpoints take. Defaults are sqrun's."""

    model_config = ConfigDict(extra="ignore", strict=True)

    model: Optional[str] = None
    max_tokens: Optional[int] = None
    max_completion_tokens: Optional[int] = None
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: Optional[int] = None
    stop: Union[str, list[str], None] = None
    stream: bool = False
    stream_options: Optional[dict[str, Any]] = None
    n: int = 1
    user: Optional[str] = None


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: Union[str, list[dict[str, Any]], None] = None


class ChatRequest(Sampling):
    messages: list[Message] = Field(min_length=1)


class CompletionRequest(Sampling):
    prompt: Union[str, list[str], list[int]]
    echo: bool = False


@dataclass
class Slot:
    model: Model
    busy: bool = False


@dataclass
class Counters:
    requests: int = 0
    cancelled: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    generated_tokens: int = 0
    queued: int = 0


@dataclass
class Server:
    """The state behind the app: the slots, the model's name, the counters /health reports."""

    model_path: Path
    slots: list[Slot]
    name: str
    n_ctx: int
    counters: Counters = field(default_factory=Counters)
    freed: asyncio.Event = field(default_factory=asyncio.Event)

    async def acquire(self, ids: list[int], request: Request) -> Slot | None:
        """The free slot sharing the longest prefix with ids, waiting for one; None if the client
        went away while waiting."""
        self.counters.queued += 1
        try:
            while True:
                free = [s for s in self.slots if not s.busy]
                if free:
                    best = max(free, key=lambda s: _common_prefix(s.model._ctx.tokens, ids))
                    best.busy = True
                    return best
                self.freed.clear()
                try:
                    await asyncio.wait_for(self.freed.wait(), timeout=0.25)
                except asyncio.TimeoutError:
                    if await request.is_disconnected():
                        return None
        finally:
            self.counters.queued -= 1

    def release(self, slot: Slot) -> None:
        """Synchronous, so that it completes inside a cancelled task too."""
        slot.busy = False
        self.freed.set()


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _stop_list(stop: str | list[str] | None) -> list[str]:
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if len(stops) > MAX_STOP_STRINGS:
        raise ApiError(400, f"stop: at most {MAX_STOP_STRINGS} strings, got {len(stops)}", param="stop")
    return stops


def _text_content(message: Message) -> str:
    if message.content is None or isinstance(message.content, str):
        return message.content or ""
    parts = []
    for part in message.content:
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise ApiError(400, "messages: only text content parts are supported", param="messages")
        parts.append(part["text"])
    return "".join(parts)


def create_app(model_path: str | Path, *, parallel: int = 1, ctx_size: int = 0, threads: int = 0,
               model_name: str | None = None, **model_options) -> FastAPI:
    """The FastAPI app serving model_path with `parallel` slots of ctx_size tokens each (0: the
    model's context length). threads: per slot (0: the cores divided among the slots)."""
    if parallel < 1:
        raise InvalidArgumentError(f"--parallel must be >= 1, got {parallel}")
    import os

    per_slot = threads or max(1, (os.cpu_count() or 1) // parallel)
    base = Model(model_path, threads=per_slot, n_ctx=ctx_size, guard_mapping=True, **model_options)
    slots = [Slot(base)] + [Slot(base.fork()) for _ in range(parallel - 1)]
    server = Server(Path(model_path), slots, model_name or Path(model_path).stem, base.context_length)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        for slot in server.slots:
            slot.model.close()

    app = FastAPI(title="sqllm", lifespan=lifespan)
    app.state.server = server

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"{where}: {first.get('msg', 'invalid request')}" if where else first.get("msg", "invalid request")
        return ApiError(400, message, param=where or None).response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return ApiError(exc.status_code, str(exc.detail), type="invalid_request_error" if exc.status_code < 500
                        else "server_error").response()

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        return ApiError(500, f"internal error: {type(exc).__name__}: {exc}", type="server_error").response()

    @app.get("/health")
    async def health():
        c = server.counters
        return {"status": "ok", "slots": len(server.slots), "slots_idle": sum(not s.busy for s in server.slots),
                "queued": c.queued, "requests": c.requests, "cancelled": c.cancelled,
                "prompt_tokens": c.prompt_tokens, "cached_tokens": c.cached_tokens,
                "generated_tokens": c.generated_tokens}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [_model_card(server)]}

    @app.get("/v1/models/{name}")
    async def model(name: str):
        if name != server.name:
            raise ApiError(404, f"The model '{name}' does not exist", param="model", code="model_not_found")
        return _model_card(server)

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatRequest, request: Request):
        _check_common(server, body)
        messages = [{"role": m.role, "content": _text_content(m)} for m in body.messages]
        try:
            ids = server.slots[0].model.chat_tokens(messages)
        except SqllmError as e:
            raise ApiError(400, str(e), param="messages") from e
        return await _respond(server, request, body, ids, chat=True)

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request):
        _check_common(server, body)
        prompt = body.prompt
        model = server.slots[0].model
        if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
            ids = list(prompt)
            if any(t < 0 or t >= model.vocab_size for t in ids):
                raise ApiError(400, f"prompt: token ids must be in [0, {model.vocab_size})", param="prompt")
            text = model.detokenize(ids)
        else:
            if isinstance(prompt, list):
                if len(prompt) != 1:
                    raise ApiError(400, "prompt: one prompt per request (a string, or a list of one string)",
                                   param="prompt")
                prompt = prompt[0]
            text = prompt
            ids = model.tokenize(text)
        if not ids:
            raise ApiError(400, "prompt: empty, and the model adds no BOS token", param="prompt")
        return await _respond(server, request, body, ids, chat=False, echo=text if body.echo else "")

    return app


def _model_card(server: Server) -> dict:
    return {"id": server.name, "object": "model", "created": int(server.model_path.stat().st_mtime),
            "owned_by": "sqllm", "context_length": server.n_ctx}


def _check_common(server: Server, body: Sampling) -> None:
    if body.model is not None and body.model != server.name:
        raise ApiError(404, f"The model '{body.model}' does not exist (this server has '{server.name}')",
                       param="model", code="model_not_found")
    if body.n != 1:
        raise ApiError(400, "n: only 1 choice per request is supported", param="n")
    for name in ("max_tokens", "max_completion_tokens"):
        value = getattr(body, name)
        if value is not None and value < 0:
            raise ApiError(400, f"{name}: must be >= 0, got {value}", param=name)
    _stop_list(body.stop)


async def _respond(server: Server, request: Request, body: Sampling, ids: list[int], *, chat: bool, echo: str = ""):
    if len(ids) >= server.n_ctx:
        raise ApiError(400, f"This model's maximum context length is {server.n_ctx} tokens; the prompt has "
                            f"{len(ids)} tokens and leaves no room for a completion.", param="messages" if chat else "prompt",
                       code="context_length_exceeded")
    limit = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    max_tokens = server.n_ctx - len(ids) if limit is None else limit
    sampling = dict(max_tokens=max_tokens, temperature=body.temperature, top_k=body.top_k, top_p=body.top_p,
                    min_p=body.min_p, repetition_penalty=body.repeat_penalty, presence_penalty=body.presence_penalty,
                    frequency_penalty=body.frequency_penalty,
                    seed=body.seed if body.seed is not None else secrets.randbits(63), stop=_stop_list(body.stop))
    rid = ("chatcmpl-" if chat else "cmpl-") + secrets.token_hex(12)
    created = int(time.time())
    server.counters.requests += 1

    slot = await server.acquire(ids, request)
    if slot is None:
        server.counters.cancelled += 1
        return JSONResponse({"error": {"message": "client went away", "type": "cancelled"}}, status_code=499)
    try:
        pieces = await run_in_threadpool(slot.model.generate_tokens, ids, **sampling)
    except SqllmError as e:
        server.release(slot)
        raise ApiError(400, str(e)) from e
    except BaseException:
        server.release(slot)
        raise
    stats = slot.model.last_stats

    def usage() -> dict:
        return {"prompt_tokens": len(ids), "completion_tokens": stats.generated_tokens,
                "total_tokens": len(ids) + stats.generated_tokens,
                "prompt_tokens_details": {"cached_tokens": stats.cached_tokens}}

    def finish(cancelled: bool) -> None:
        c = server.counters
        c.cancelled += cancelled
        c.prompt_tokens += stats.prompt_tokens
        c.cached_tokens += stats.cached_tokens
        c.generated_tokens += stats.generated_tokens

    if body.stream:
        include_usage = bool((body.stream_options or {}).get("include_usage"))
        return StreamingResponse(_sse(server, slot, pieces, request, chat, rid, created, echo, include_usage,
                                      stats, usage, finish), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    text, cancelled = [], False
    try:
        while True:
            piece = await run_in_threadpool(next, pieces, None)
            if piece is None:
                break
            text.append(piece)
            if len(text) % 16 == 0 and await request.is_disconnected():
                cancelled = True
                break
    finally:
        finish(cancelled)
        server.release(slot)
    content = echo + "".join(text)
    if chat:
        choice = {"index": 0, "message": {"role": "assistant", "content": content},
                  "finish_reason": stats.finish_reason, "logprobs": None}
    else:
        choice = {"index": 0, "text": content, "finish_reason": stats.finish_reason, "logprobs": None}
    return {"id": rid, "object": "chat.completion" if chat else "text_completion", "created": created,
            "model": server.name, "choices": [choice], "usage": usage(), "system_fingerprint": None}


async def _sse(server: Server, slot: Slot, pieces: Iterator[str], request: Request, chat: bool, rid: str, created: int,
               echo: str, include_usage: bool, stats: GenerationStats, usage, finish) -> AsyncIterator[str]:
    kind = "chat.completion.chunk" if chat else "text_completion"

    def event(choice: dict | None, **extra) -> str:
        chunk = {"id": rid, "object": kind, "created": created, "model": server.name,
                 "choices": [] if choice is None else [choice], **extra}
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    def choice(text: str | None, finish_reason: str | None, first: bool = False) -> dict:
        if chat:
            delta = {} if text is None else {"content": text}
            if first:
                delta["role"] = "assistant"
            return {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return {"index": 0, "text": text or "", "finish_reason": finish_reason, "logprobs": None}

    cancelled = True  # until the stream is written to the end
    try:
        if chat:
            yield event(choice("", None, first=True))
        elif echo:
            yield event(choice(echo, None))
        while True:
            piece = await run_in_threadpool(next, pieces, None)
            if piece is None:
                break
            yield event(choice(piece, None))
        yield event(choice(None, stats.finish_reason))
        if include_usage:
            yield event(None, usage=usage())
        yield "data: [DONE]\n\n"
        cancelled = False
    finally:
        finish(cancelled)
        server.release(slot)


def serve(model_path: Path, *, host: str, port: int, parallel: int, ctx_size: int, threads: int,
          model_name: str | None, log_level: str = "info", **model_options) -> None:
    import sys

    import uvicorn

    app = create_app(model_path, parallel=parallel, ctx_size=ctx_size, threads=threads, model_name=model_name,
                     **model_options)
    warning = ctx_size_warning(app.state.server.slots[0].model)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
