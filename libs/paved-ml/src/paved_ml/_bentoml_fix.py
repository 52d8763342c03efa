"""Two fixes for BentoML 1.4.39's request path, pinned to that version.

The request timeout: BentoML's `TimeoutMiddleware` schedules a `call_later` timer per
request and never cancels it; the timer's callback holds the request's future and (through
the copied context) its span and request objects for `traffic.timeout` seconds, so every
request's garbage lives on into the old generation and full collections stall the event
loop. `CancellingTimeoutMiddleware` behaves the same (504 after the timeout) but cancels its
timer as soon as the response starts, and schedules it in an empty context.

Tracing that goes nowhere: BentoML wraps every request in OpenTelemetry's ASGI middleware
even when no trace exporter is configured (its default), so each request builds spans that
are never sent: measured, a third of a small model's request time. Without an exporter
(`tracing.exporter_type` unset) `RequestIdMiddleware` takes its place and keeps what the
spans gave besides traces: a request id per request (the `X-BentoML-Request-ID` header and
the logs' request id). With an exporter configured, BentoML's tracing is left as it is.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["FIXED_VERSION", "CancellingTimeoutMiddleware", "RequestIdMiddleware", "install"]

FIXED_VERSION = "1.4.39"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _time_out(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class CancellingTimeoutMiddleware:
    """Answer 504 when a request takes longer than `timeout` seconds to start responding."""

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(self.timeout, _time_out, waiter, context=contextvars.Context())

        async def _send(message: Message) -> None:
            if not waiter.done():
                waiter.set_result(None)
                timer.cancel()
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, _send))
        try:
            await waiter
        except TimeoutError:
            if task.cancel():
                from starlette.responses import JSONResponse

                message = f"Not able to process the request in {self.timeout} seconds"
                await JSONResponse({"error": message}, status_code=504)(scope, receive, send)
        else:
            await task
        finally:
            timer.cancel()


class RequestIdMiddleware:
    """Give each request a random 64-bit id, as BentoML's request span id would have been."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            from bentoml._internal.context import trace_context

            trace_context.request_id = random.getrandbits(64) or 1
        await self.app(scope, receive, send)


def tracing_exports() -> bool:
    """Whether BentoML's configuration names a trace exporter (`tracing.exporter_type`)."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    return BentoMLContainer.config.tracing.exporter_type.get() is not None


class _Replaced(property):
    """BentoML's `ServiceAppFactory.middlewares`, with idle tracing replaced (see above)."""

    def __init__(self, original: property) -> None:
        def middlewares(factory: Any) -> list[Any]:
            found: list[Any] = original.__get__(factory)
            if tracing_exports():
                return found
            from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
            from starlette.middleware import Middleware

            return [
                Middleware(RequestIdMiddleware) if entry.cls is OpenTelemetryMiddleware else entry
                for entry in found
            ]

        super().__init__(middlewares, doc=original.__doc__)


def install() -> bool:
    """Install both fixes in BentoML; only on the version they were made for."""
    import bentoml

    if bentoml.__version__ != FIXED_VERSION:
        return False
    from _bentoml_impl.server.app import ServiceAppFactory
    from bentoml._internal.server.http import traffic

    traffic.TimeoutMiddleware = CancellingTimeoutMiddleware  # type: ignore[misc,assignment]
    if not isinstance(ServiceAppFactory.middlewares, _Replaced):  # not twice
        ServiceAppFactory.middlewares = _Replaced(ServiceAppFactory.middlewares)
    return True
