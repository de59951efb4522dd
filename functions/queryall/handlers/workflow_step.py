"""The handler of a workflow function: one step of the query state machine.

The step's input is parsed into its model (a malformed one fails the step, and the state machine's
Catch ends the job failed), the job id (and a batch's index) join every log line, and the rest is
`function_handler`. The step itself is a function of its parsed input: what it does lives in logic/.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from queryall.handlers.function import Handler, function_handler
from queryall.observability import logger

Input = TypeVar("Input", bound=BaseModel)


def workflow_step(model: type[Input], *, settings: Iterable[str] = ()) -> Callable[[Callable[[Input], dict]], Handler]:
    """Decorate `step(event: model) -> dict` into the function's handler, needing `settings`."""

    def decorate(step: Callable[[Input], dict]) -> Handler:
        @event_parser(model=model)
        def handler(event: Input, context: LambdaContext) -> dict:
            keys = {"job_id": getattr(event, "job_id", None), "batch_index": _batch_index(event)}
            logger.append_keys(**{key: value for key, value in keys.items() if value is not None})
            return step(event)

        return function_handler(handler, settings=settings, traced=True)

    return decorate


def _batch_index(event: BaseModel) -> int | None:
    batch = getattr(event, "batch", None)
    return getattr(batch, "batch_index", None)
