"""A part of the local stack that enters its process-wide changes into the stack's ExitStack, or, used
alone (``with part:``), into an ExitStack of its own that it closes when it ends."""

from __future__ import annotations

import contextlib
from typing import Self


class OwnPatches:
    _own_patches: contextlib.ExitStack | None = None

    def _patches_or_own(self, patches: contextlib.ExitStack | None) -> contextlib.ExitStack:
        if patches is None:
            patches = self._own_patches = contextlib.ExitStack()
        return patches

    def _close_own_patches(self) -> None:
        own, self._own_patches = self._own_patches, None
        if own is not None:
            own.close()

    def _begin(self) -> None:
        raise NotImplementedError

    def _end(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._begin()
        return self

    def __exit__(self, *exc: object) -> None:
        self._end()
