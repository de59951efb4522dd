"""``python -m queryall_local`` runs the ``queryall`` command line."""

from .cli import run

run()
