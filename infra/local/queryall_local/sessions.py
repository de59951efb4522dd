"""The boto3 sessions of the local stack: one botocore model loader, clients made one at a time.

Each botocore session decodes a service's model again when it makes its first client (~0.2 s for
SSM); the stack's own session and the handlers' default session share one loader, so each model is
decoded once per process. Making clients of one loader from several threads at once is not
thread-safe in botocore, and Map iterations make them concurrently: one lock for all of it, instead
of creating every client up front.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.loaders import Loader, create_loader

_LOCK = threading.RLock()
_LOADER: Loader | None = None


def _loader() -> Loader:
    global _LOADER
    with _LOCK:
        if _LOADER is None:
            _LOADER = create_loader()
        return _LOADER


class SerializedSession(boto3.session.Session):
    """A boto3 session sharing the process's model loader, making one client or resource at a time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._session.register_component("data_loader", _loader())

    def client(self, *args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return super().client(*args, **kwargs)

    def resource(self, *args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return super().resource(*args, **kwargs)
