"""paved_ml._bentoml_fix: BentoML 1.4.39's request path (timeout, request ids, direct JSON)."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import json
import weakref
from typing import Any

import bentoml
import pytest
from bentoml._internal.server.http import traffic
from paved_ml import _bentoml_fix, serving
from pydantic import BaseModel

pytestmark = pytest.mark.libs

ORIGINAL = traffic.TimeoutMiddleware if not serving.TIMEOUT_FIX_INSTALLED else None
MARKER: contextvars.ContextVar[object] = contextvars.ContextVar("marker")


class Payload:
    """Stands for what a request leaves in its context (spans, the request object)."""


def original_middleware() -> type:
    # serving replaced the class at import; the module keeps the original's source intact.
    import importlib

    fresh = importlib.reload(traffic)
    original = fresh.TimeoutMiddleware
    _bentoml_fix.install()  # reload restored BentoML's class: put the fix back
    return original


def test_fix_is_installed_for_the_pinned_version() -> None:
    assert bentoml.__version__ == _bentoml_fix.FIXED_VERSION
    assert serving.TIMEOUT_FIX_INSTALLED
    assert traffic.TimeoutMiddleware is _bentoml_fix.CancellingTimeoutMiddleware


async def request_through(middleware: Any, app: Any) -> tuple[list[dict], bool]:
    """Send one request through `middleware`; return what was sent and whether the
    request's context was released right after the response."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    holder = [Payload()]
    ref = weakref.ref(holder[0])

    async def one_request() -> None:
        MARKER.set(holder[0])
        await middleware(app, timeout=30)(
            {"type": "http", "method": "GET", "path": "/"}, receive, send
        )

    await asyncio.get_running_loop().create_task(one_request(), context=contextvars.Context())
    holder.clear()
    for _ in range(3):  # let the loop run the finished tasks' callbacks
        await asyncio.sleep(0)
    gc.collect()
    return sent, ref() is None


async def fast_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_bentoml_timer_keeps_each_request_alive_and_the_fix_does_not() -> None:
    original = original_middleware()
    sent, released = asyncio.run(request_through(original, fast_app))
    assert sent[0]["status"] == 200 and not released  # the bug, in the pinned version
    sent, released = asyncio.run(
        request_through(_bentoml_fix.CancellingTimeoutMiddleware, fast_app)
    )
    assert sent[0]["status"] == 200 and released


async def slow_app(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.sleep(5)
    await fast_app(scope, receive, send)


async def through_timeout(timeout: float, *, cancel_after: float | None = None) -> list[dict]:
    """One GET to slow_app through CancellingTimeoutMiddleware; what it sent.

    With `cancel_after`, the request's task is cancelled from outside after that many
    seconds (a client gone away), and the CancelledError must reach the caller.
    """
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    async def send(message: dict) -> None:
        sent.append(message)

    middleware = _bentoml_fix.CancellingTimeoutMiddleware(slow_app, timeout=timeout)
    task = asyncio.ensure_future(
        middleware({"type": "http", "method": "GET", "path": "/"}, receive, send)
    )
    if cancel_after is None:
        await task
        return sent
    await asyncio.sleep(cancel_after)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return sent


def test_slow_requests_still_get_504() -> None:
    sent = asyncio.run(through_timeout(0.05))
    assert sent[0]["status"] == 504
    assert b"Not able to process the request in 0.05 seconds" in sent[1]["body"]


def test_a_request_cancelled_from_outside_is_not_turned_into_a_504() -> None:
    """Only the middleware's own timer answers 504: a client gone away still cancels."""
    assert asyncio.run(through_timeout(30, cancel_after=0.01)) == []


@bentoml.service(name="tracing-probe")
class TracingProbe:
    @bentoml.api
    def echo(self, text: str) -> str:
        return text


def middleware_classes(service: Any = TracingProbe) -> list[type]:
    """The middlewares BentoML's worker would wrap `service`'s app in (its config injected)."""
    from _bentoml_impl.server.app import ServiceAppFactory

    return [entry.cls for entry in ServiceAppFactory(service).middlewares]


def test_idle_tracing_gives_way_to_request_ids_and_stays_when_traces_go_somewhere() -> None:
    from bentoml._internal.configuration.containers import BentoMLContainer
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    TracingProbe.inject_config()  # what BentoML's worker does before it builds the app
    exporter = BentoMLContainer.config.tracing.exporter_type
    assert exporter.get() is None  # BentoML's default: no trace is sent anywhere
    classes = middleware_classes()
    assert _bentoml_fix.RequestIdMiddleware in classes
    assert OpenTelemetryMiddleware not in classes
    exporter.set("in_memory")
    try:
        classes = middleware_classes()
        assert OpenTelemetryMiddleware in classes
        assert _bentoml_fix.RequestIdMiddleware not in classes
    finally:
        exporter.set(None)


def test_each_request_gets_its_own_id() -> None:
    from bentoml._internal.context import trace_context

    seen: list[int | None] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(trace_context.request_id)

    async def scenario() -> None:
        middleware = _bentoml_fix.RequestIdMiddleware(app)
        for _ in range(3):
            await asyncio.get_running_loop().create_task(
                middleware({"type": "http"}, None, None), context=contextvars.Context()
            )

    asyncio.run(scenario())
    assert all(isinstance(found, int) and found > 0 for found in seen)
    assert len(set(seen)) == 3


class Shout(BaseModel):
    text: str
    times: int


@bentoml.service(name="direct-probe")
class DirectProbe:
    @bentoml.api
    async def shout(self, text: str, times: int = 1) -> Shout:
        if text == "fail":
            raise RuntimeError("the function failed")
        return Shout(text=text.upper() * times, times=times)

    @bentoml.api
    def whisper(self, text: str) -> Shout:  # not async: BentoML runs it in a thread
        return Shout(text=text.lower(), times=1)

    @bentoml.api
    async def echo(self, text: str) -> str:  # a bare value: BentoML's root-model path
        return text


def drive_direct(path: str, body: bytes, content_type: bytes = b"application/json") -> dict:
    """POST `body` through DirectJSONMiddleware over DirectProbe; what it sent, and what
    reached the app behind it (BentoML's own path)."""
    from _bentoml_impl.server.app import ServiceAppFactory

    DirectProbe.inject_config()  # what BentoML's worker does before it builds the app
    factory = ServiceAppFactory(DirectProbe)
    factory._service_instance = DirectProbe.inner()  # what the worker's start-up makes
    sent: list[dict] = []
    passed_on: list[bytes] = []
    chunks = [body[:3], body[3:]]

    async def receive() -> dict:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: dict) -> None:
        sent.append(message)

    async def bentoml_path(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        passed_on.append(message["body"])
        while message.get("more_body"):
            message = await receive()
            passed_on[-1] += message["body"]

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [(b"content-type", content_type)],
    }
    middleware = _bentoml_fix.DirectJSONMiddleware(bentoml_path, factory=factory)
    asyncio.run(middleware(scope, receive, send))
    return {"sent": sent, "passed_on": passed_on}


def test_a_json_call_to_an_async_api_is_answered_directly() -> None:
    result = drive_direct("/shout", b'{"text": "hi", "times": 2}')
    assert result["passed_on"] == []
    start, body = result["sent"]
    headers = dict(start["headers"])
    assert start["status"] == 200 and json.loads(body["body"]) == {"text": "HIHI", "times": 2}
    assert headers[b"server"] == b"BentoML Service/direct-probe"
    assert headers[b"content-length"] == str(len(body["body"])).encode()
    # A default the request leaves out is the API's own, as BentoML fills it in.
    _, body = drive_direct("/shout", b'{"text": "hi"}')["sent"]
    assert json.loads(body["body"]) == {"text": "HI", "times": 1}


def test_a_failing_function_is_answered_500_as_bentoml_answers_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    result = drive_direct("/shout", b'{"text": "fail"}')
    start, body = result["sent"]
    assert start["status"] == 500 and result["passed_on"] == []
    assert json.loads(body["body"]) == {
        "error": "An unexpected error has occurred, please check the server log."
    }
    assert "Exception on /shout [POST]" in caplog.text and "the function failed" in caplog.text


@pytest.mark.parametrize(
    ("path", "body", "content_type"),
    [
        ("/shout", b'{"text": 3}', b"application/json"),  # invalid: BentoML's 400
        ("/shout", b'{"text": "hi"}', b"multipart/form-data; boundary=x"),  # not JSON
        ("/whisper", b'{"text": "HI"}', b"application/json"),  # not async
        ("/echo", b'{"text": "hi"}', b"application/json"),  # a root output
        ("/nowhere", b'{"text": "hi"}', b"application/json"),  # no such API
    ],
)
def test_every_other_call_goes_on_to_bentoml_with_its_body_whole(
    path: str, body: bytes, content_type: bytes
) -> None:
    result = drive_direct(path, body, content_type)
    assert result["sent"] == [] and result["passed_on"] == [body]


def test_the_direct_path_sits_innermost_unless_answers_carry_trace_ids() -> None:
    from _bentoml_impl.server.app import ContextMiddleware
    from bentoml._internal.configuration.containers import BentoMLContainer

    DirectProbe.inject_config()
    classes = middleware_classes(DirectProbe)
    assert classes[-2:] == [_bentoml_fix.DirectJSONMiddleware, ContextMiddleware]
    trace_ids = BentoMLContainer.http.response.trace_id
    trace_ids.set(True)
    try:
        assert _bentoml_fix.DirectJSONMiddleware not in middleware_classes(DirectProbe)
    finally:
        trace_ids.set(False)
