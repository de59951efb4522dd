"""SnapStart for the API functions: what each environment restored from a snapshot must renew.

Lambda initialises an API function once per published version, snapshots it, and resumes every new
execution environment from that snapshot, many at once. Whatever the import made is then shared by all
of them and dated from the snapshot: boto3 clients with their pooled connections and the credentials
their session resolved, caches whose entries carry the snapshot's time (the accepted API keys, managed keys), and
the state of Python's `random` module. `renew_after_restore` renews them; it is registered with the
Lambda runtime's hook registry (snapshot_restore_py, part of the Python managed runtime and pinned in
requirements.txt for the local stack and tests), which runs it after every restore and never otherwise.
uuid4 and `secrets` read os.urandom on each call, so the job ids they make need nothing.
"""

from __future__ import annotations

import random

from snapshot_restore_py import register_after_restore

from queryall.dal import api_keys, aws, managed_keys


def renew_after_restore() -> None:
    aws.renew_session()
    api_keys.clear_cache()
    managed_keys.clear_cache()  # managed keys looked up (or found unknown/revoked) before the snapshot
    from aws_lambda_powertools.utilities.parameters import base

    base.clear_caches()  # Powertools' parameter cache (its entries expire by the snapshot's clock too)
    random.seed()  # from os.urandom: otherwise every restored environment draws the same numbers


def register() -> None:
    """Have the runtime run `renew_after_restore` after each restore (once per process)."""
    from snapshot_restore_py import get_after_restore

    if not any(entry[0] is renew_after_restore for entry in get_after_restore()):
        register_after_restore(renew_after_restore)
