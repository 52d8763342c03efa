"""Three changes to BentoML 1.4.39's request path, pinned to that version.

The request timeout: BentoML's `TimeoutMiddleware` schedules a `call_later` timer per
request and never cancels it; the timer's callback holds the request's future and (through
the copied context) its span and request objects for `traffic.timeout` seconds, so every
request's garbage lives on into the old generation and full collections stall the event
loop. `CancellingTimeoutMiddleware` behaves the same (504 after the timeout) but cancels its
timer as soon as the response starts, schedules it in an empty context, and runs the
request in the task that received it (BentoML's starts a second task per request).

Tracing that goes nowhere: BentoML wraps every request in OpenTelemetry's ASGI middleware
even when no trace exporter is configured (its default), so each request builds spans that
are never sent: measured, a third of a small model's request time. Without an exporter
(`tracing.exporter_type` unset) `RequestIdMiddleware` takes its place and keeps what the
spans gave besides traces: a request id per request (the `X-BentoML-Request-ID` header and
the logs' request id). With an exporter configured, BentoML's tracing is left as it is.

A JSON call's IO layer: for each call BentoML builds a Starlette request, routes it, looks
the API method up and re-reads its signature, and streams the answer in three messages;
measured, more than the model's own call. `DirectJSONMiddleware` answers a JSON request to an
API that needs none of that (async, not batched, no context parameter, no files or streams)
with BentoML's own pieces: the API's input model validates the body, the API's function is
called as BentoML calls it, the output model's JSON is the answer, with BentoML's `Server`
and request id headers. It sits inside every middleware BentoML and the team add (metrics,
access log, timeout, body limit, CORS), so those see the request as before. A body that does
not validate, and every other request, goes on to BentoML, which answers it as it always has.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import random
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = [
    "FIXED_VERSION",
    "CancellingTimeoutMiddleware",
    "DirectJSONMiddleware",
    "RequestIdMiddleware",
    "install",
]

FIXED_VERSION = "1.4.39"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class CancellingTimeoutMiddleware:
    """Answer 504 when a request takes longer than `timeout` seconds to start responding."""

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        task = asyncio.current_task()
        if task is None:  # not under an event loop's task: nothing to cancel
            await self.app(scope, receive, send)
            return
        fired: list[bool] = []
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self.timeout, _time_out, task, fired, context=_EMPTY)
        started = False

        async def _send(message: Message) -> None:
            nonlocal started
            if not started:
                started = True
                timer.cancel()
            await send(message)

        try:
            await self.app(scope, receive, _send)
        except asyncio.CancelledError:
            if not fired or started:
                raise
            task.uncancel()
            from starlette.responses import JSONResponse

            message = f"Not able to process the request in {self.timeout} seconds"
            await JSONResponse({"error": message}, status_code=504)(scope, receive, send)
        finally:
            timer.cancel()


#: The context the timers run in: an empty one, so they hold nothing of the request's.
_EMPTY = contextvars.Context()


def _time_out(task: asyncio.Task[Any], fired: list[bool]) -> None:
    fired.append(True)
    task.cancel()


class RequestIdMiddleware:
    """Give each request a random 64-bit id, as BentoML's request span id would have been."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            from bentoml._internal.context import trace_context

            trace_context.request_id = random.getrandbits(64) or 1
        await self.app(scope, receive, send)


class DirectJSONMiddleware:
    """Answer JSON calls to the service's plain async APIs with BentoML's own pieces, directly.

    `factory` is the worker's `ServiceAppFactory`: its service's APIs say which routes
    qualify, and its service instance (made when the worker starts) is what gets called.
    """

    def __init__(self, app: ASGIApp, factory: Any) -> None:
        from bentoml._internal.configuration.containers import BentoMLContainer

        self.app = app
        self.factory = factory
        self.routes = {
            method.route: method for method in factory.service.apis.values() if _direct(method)
        }
        self.server = f"BentoML Service/{factory.service.name}".encode("latin-1")
        self.id_format = BentoMLContainer.logging_formatting.get()["span_id"]
        self._callers: dict[str, Any] = {}
        self._instance: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if method is None or scope["method"] != "POST" or not _json(scope):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        body = bytearray()
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        from pydantic import ValidationError

        try:
            data = method.input_spec.model_validate_json(bytes(body) or b"{}")
        except ValidationError:  # BentoML answers it: its 400, its log line

            async def replay() -> Message:
                return messages.pop(0) if messages else await receive()

            await self.app(scope, replay, send)
            return
        try:
            output = await self._caller(method)(
                **{name: getattr(data, name) for name in method.input_spec.model_fields}
            )
            status, content = 200, output.model_dump_json().encode()
        except Exception as error:  # answered as BentoML answers it
            status, content = _failure(scope, error)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(content)).encode("latin-1")),
            (b"server", self.server),
        ]
        from bentoml._internal.context import trace_context

        if trace_context.request_id is not None:
            request_id = format(trace_context.request_id, self.id_format).encode("latin-1")
            headers.append((b"x-bentoml-request-id", request_id))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    def _caller(self, method: Any) -> Any:
        """The API's function bound to the worker's service instance, as BentoML calls it."""
        instance = self.factory._service_instance
        if instance is not self._instance:
            self._instance, self._callers = instance, {}
        caller = self._callers.get(method.name)
        if caller is None:
            caller = self._callers[method.name] = getattr(instance, method.name).local
        return caller


def _direct(method: Any) -> bool:
    """Whether DirectJSONMiddleware may answer `method`'s JSON calls (see the module doc)."""
    from _bentoml_sdk.io_models import ARGS, KWARGS, IORootModel
    from bentoml._internal.utils import get_original_func

    inputs, outputs = method.input_spec, method.output_spec
    return (
        not method.batchable
        and method.ctx_param is None
        and not method.is_stream
        and not method.is_task
        and inspect.iscoroutinefunction(get_original_func(method.func))
        and not getattr(inputs, "__root_input__", False)
        and not inputs.multipart_fields
        and not {ARGS, KWARGS} & set(inputs.model_fields)
        and not issubclass(outputs, IORootModel)
        and not outputs.multipart_fields
    )


def _json(scope: Scope) -> bool:
    """Whether a body is JSON: its content type says so or (as BentoML reads it) is absent."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bool(value.split(b";")[0].strip().lower() == b"application/json")
    return True


def _failure(scope: Scope, error: Exception) -> tuple[int, bytes]:
    """BentoML's answer to an API function that raised `error`, logged as BentoML logs it."""
    import json

    from bentoml._internal.server.http_app import log_exception
    from bentoml.exceptions import BentoMLException
    from pydantic import ValidationError
    from starlette.requests import Request

    log_exception(Request(scope))
    detail: Any
    if isinstance(error, ValidationError):
        status = 400
        detail = {
            "error": f"{error.error_count()} validation error for {error.title}",
            "detail": error.errors(include_context=False, include_input=False),
        }
    elif isinstance(error, BentoMLException):
        status = error.error_code.value
        if status in (401, 403):
            detail = {"error": "Authorization error"}
        elif status >= 500:
            detail = {"error": "An unexpected error has occurred, please check the server log."}
        else:
            detail = ({"error": str(error)},)
    else:
        status = 500
        detail = {"error": "An unexpected error has occurred, please check the server log."}
    # As Starlette's JSONResponse renders it.
    return status, json.dumps(detail, ensure_ascii=False, separators=(",", ":")).encode()


def tracing_exports() -> bool:
    """Whether BentoML's configuration names a trace exporter (`tracing.exporter_type`)."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    return BentoMLContainer.config.tracing.exporter_type.get() is not None


class _Replaced(property):
    """BentoML's `ServiceAppFactory.middlewares`, changed as the module doc says.

    Idle tracing is replaced, and the direct JSON path is added innermost.
    """

    def __init__(self, original: property) -> None:
        def middlewares(factory: Any) -> list[Any]:
            from _bentoml_impl.server.app import ContextMiddleware
            from bentoml._internal.configuration.containers import BentoMLContainer
            from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
            from starlette.middleware import Middleware

            found: list[Any] = original.__get__(factory)
            if not tracing_exports():
                found = [
                    Middleware(RequestIdMiddleware)
                    if entry.cls is OpenTelemetryMiddleware
                    else entry
                    for entry in found
                ]
            # BentoML's last middleware is its ContextMiddleware (the `bentoml.Context` of a
            # call); the APIs answered directly take no context. A trace id asked for in
            # each answer (`http.response.trace_id`) leaves every call to BentoML.
            innermost = found[-1].cls if found else None
            if innermost is ContextMiddleware and not BentoMLContainer.http.response.trace_id.get():
                found.insert(len(found) - 1, Middleware(DirectJSONMiddleware, factory=factory))
            return found

        super().__init__(middlewares, doc=original.__doc__)


def install() -> bool:
    """Install the three changes in BentoML; only on the version they were made for."""
    import bentoml

    if bentoml.__version__ != FIXED_VERSION:
        return False
    from _bentoml_impl.server.app import ServiceAppFactory
    from bentoml._internal.server.http import traffic

    traffic.TimeoutMiddleware = CancellingTimeoutMiddleware  # type: ignore[misc,assignment]
    if not isinstance(ServiceAppFactory.middlewares, _Replaced):  # not twice
        ServiceAppFactory.middlewares = _Replaced(ServiceAppFactory.middlewares)
    return True
