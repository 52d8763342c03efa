"""paved_ml._bentoml_fix: BentoML 1.4.39's request timeout, fixed and pinned to the version."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import weakref
from typing import Any

import bentoml
import pytest
from bentoml._internal.server.http import traffic
from paved_ml import _bentoml_fix, serving

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


def test_slow_requests_still_get_504() -> None:
    async def slow_app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(5)
        await fast_app(scope, receive, send)

    async def scenario() -> list[dict]:
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b""}

        async def send(message: dict) -> None:
            sent.append(message)

        middleware = _bentoml_fix.CancellingTimeoutMiddleware(slow_app, timeout=0.05)
        await middleware({"type": "http", "method": "GET", "path": "/"}, receive, send)
        return sent

    sent = asyncio.run(scenario())
    assert sent[0]["status"] == 504
    assert b"Not able to process the request in 0.05 seconds" in sent[1]["body"]


@bentoml.service(name="tracing-probe")
class TracingProbe:
    @bentoml.api
    def echo(self, text: str) -> str:
        return text


def middleware_classes() -> list[type]:
    """The middlewares BentoML's worker would wrap TracingProbe's app in."""
    from _bentoml_impl.server.app import ServiceAppFactory

    return [entry.cls for entry in ServiceAppFactory(TracingProbe).middlewares]


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
