"""The local stack's background loops (event tap, table streams, queue pollers, schedules): each a daemon
thread running its ``_run`` until ``stop``, which its loop watches as ``self._stop``."""

from __future__ import annotations

import threading


class BackgroundLoop:
    def __init__(self, name: str, *, join_timeout: float = 10) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._join_timeout = join_timeout

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._join_timeout)

    def _run(self) -> None:
        raise NotImplementedError
