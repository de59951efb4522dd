"""Log keys per invocation in the local stack.

On AWS a Lambda process runs one invocation at a time, so Powertools' Logger keeps the keys that
`inject_lambda_context` and `append_keys` set (function name, request id, job id) for the whole
process. The local stack runs every function in threads of one process: a line logged by one function
could carry the keys another function had just set (QueryBatch's lines named PollFunction, or the job
of another batch). While installed, each thread keeps its own copy of every Powertools formatter's keys,
starting from the keys the formatter was configured with, and `own_keys()` gives an invocation keys of
its own, put back when it returns (a handler invoking another function in the same thread).
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator
from typing import Any

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter


class _KeysPerThread:
    """A data descriptor for `LambdaPowertoolsFormatter.log_format` (the dict its keys live in)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _mine(self) -> weakref.WeakKeyDictionary[Any, dict]:
        keys = getattr(self._local, "keys", None)
        if keys is None:
            keys = self._local.keys = weakref.WeakKeyDictionary()
        return keys

    def __get__(self, formatter: Any, owner: type | None = None) -> Any:
        if formatter is None:
            return self
        mine = self._mine()
        if formatter not in mine:
            mine[formatter] = dict(formatter.__dict__.get("log_format", {}))
        return mine[formatter]

    def __set__(self, formatter: Any, value: dict) -> None:
        # The first keys a formatter is given (its configuration) are where every thread starts from.
        formatter.__dict__.setdefault("log_format", value)
        self._mine()[formatter] = value

    @contextlib.contextmanager
    def own(self) -> Iterator[None]:
        saved = weakref.WeakKeyDictionary({formatter: dict(keys) for formatter, keys in self._mine().items()})
        try:
            yield
        finally:
            self._local.keys = saved


_KEYS = _KeysPerThread()


def _installed() -> bool:
    return LambdaPowertoolsFormatter.__dict__.get("log_format") is _KEYS


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """Keys per thread while the block runs; the formatter class as it was afterwards (also when
    something uninstalled it meanwhile)."""
    before = LambdaPowertoolsFormatter.__dict__.get("log_format")
    install()
    try:
        yield
    finally:
        if before is None:
            uninstall()
        else:
            LambdaPowertoolsFormatter.log_format = before  # type: ignore[assignment]


def install() -> None:
    LambdaPowertoolsFormatter.log_format = _KEYS  # type: ignore[assignment]


def uninstall() -> None:
    if _installed():
        del LambdaPowertoolsFormatter.log_format


def own_keys() -> contextlib.AbstractContextManager[None]:
    """Keys set inside the block are undone when it ends (no-op where not installed)."""
    return _KEYS.own() if _installed() else contextlib.nullcontext()
