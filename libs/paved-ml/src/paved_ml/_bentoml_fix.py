"""A fix for BentoML 1.4.39's request timeout, pinned to that version.

BentoML's `TimeoutMiddleware` schedules a `call_later` timer per request and never cancels
it; the timer's callback holds the request's future and (through the copied context) its
span and request objects for `traffic.timeout` seconds, so every request's garbage lives
on into the old generation and full collections stall the event loop. This middleware
behaves the same (504 after the timeout) but cancels its timer as soon as the response
starts, and schedules it in an empty context.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["FIXED_VERSION", "CancellingTimeoutMiddleware", "install"]

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


def install() -> bool:
    """Swap BentoML's middleware for the fixed one; only on the version it was made for."""
    import bentoml
    from bentoml._internal.server.http import traffic

    if bentoml.__version__ != FIXED_VERSION:
        return False
    traffic.TimeoutMiddleware = CancellingTimeoutMiddleware  # type: ignore[misc,assignment]
    return True
