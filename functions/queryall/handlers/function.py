"""What every function's handler is wrapped in, so a new function cannot forget any of it.

Logging context (the invocation's keys, cleared between invocations), metrics flushed at the end of each
invocation, the settings the function needs checked at its cold start, and the end of its import
(`init_done`: the handler is the last thing a handler module builds). Workflow functions are traced too;
API functions are not (the tracer costs ~90 ms of cold start, see queryall.observability).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.utilities.typing import LambdaContext

from queryall.handlers import init_done
from queryall.observability import logger, metrics

Handler = Callable[[Any, LambdaContext], Any]


def function_handler(handler: Handler, *, settings: Iterable[str] = (), traced: bool = False) -> Handler:
    """`handler` as the Lambda function's entry point (see the module's docstring)."""
    names = tuple(settings)
    if names:  # only then: the settings model brings pydantic, which SqlGuard's cold start never loads
        from queryall import settings as function_settings

        function_settings.require(*names)
    wrapped = _metrics_never_pile_up(metrics.log_metrics(handler))
    if traced:
        from queryall.observability import tracer

        wrapped = tracer.capture_lambda_handler(wrapped)
    wrapped = logger.inject_lambda_context(clear_state=True)(wrapped)
    init_done()
    return wrapped


def _metrics_never_pile_up(handler: Handler) -> Handler:
    # With POWERTOOLS_METRICS_DISABLED (the local stack, tests) Powertools' flush neither prints nor clears,
    # so one process's values piled up until the 100th of one metric made Powertools serialize the set
    # itself, which raised without a namespace: every 100th QueryBatch of a session failed its tenants.
    @functools.wraps(handler)
    def invoke(event: Any, context: LambdaContext) -> Any:
        try:
            return handler(event, context)
        finally:
            if is_metrics_disabled():
                metrics.clear_metrics()

    return invoke
