"""``queryall keys create|list|revoke``: managed API keys, through the admin-only /query-all/keys routes."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any


def add_keys_command(subparsers: Any, connection: argparse.ArgumentParser,
                     command: Callable[[Callable[..., int]], Callable[[argparse.Namespace], int]]) -> None:
    keys = subparsers.add_parser("keys", help="manage API keys (needs an admin or bootstrap key)")
    actions = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    create = actions.add_parser("create", parents=[connection], help="create a key; its secret is printed once")
    create.add_argument("--name", required=True, help="what the key is for")
    create.add_argument("--owner", dest="owner_label", help="who holds the key (a label)")
    create.add_argument("--bucket", action="append", dest="buckets", metavar="BUCKET",
                        help="a tenant the key may query (repeat for several; default: every tenant, '*')")
    create.add_argument("--admin", action="store_true", help="may manage keys, refresh the catalog, list all jobs")
    create.add_argument("--max-running", type=int, help="jobs running at once (default: the deployment's)")
    create.add_argument("--rate", type=int, dest="rate_per_minute",
                        help="submits per minute (default: the deployment's)")
    create.add_argument("--json", action="store_true", help='print the API\'s JSON: {"id", "secret", …}')
    create.set_defaults(func=command(_create))

    listing = actions.add_parser("list", parents=[connection], help="list the keys (never their secrets)")
    listing.add_argument("--json", action="store_true", help="print the API's JSON list")
    listing.set_defaults(func=command(_list))

    revoke = actions.add_parser("revoke", parents=[connection], help="revoke a key (everywhere within a minute)")
    revoke.add_argument("key_id", metavar="ID")
    revoke.set_defaults(func=command(_revoke))


def _print(text: str) -> None:
    print(text, flush=True)


def _create(client: Any, args: argparse.Namespace, out: Any, err: Any) -> int:
    body: dict[str, Any] = {"name": args.name, "buckets": args.buckets or "*", "admin": args.admin}
    for field in ("owner_label", "max_running", "rate_per_minute"):
        if getattr(args, field) is not None:
            body[field] = getattr(args, field)
    key = client.create_key(body)
    if args.json:
        _print(json.dumps(key))
    else:
        _print(f"id {key['id']}\nsecret {key['secret']}")
        err.print("the secret is shown only now; send it as X-API-Key (--api-key)", markup=False, highlight=False)
    return 0


def _describe(key: dict[str, Any]) -> str:
    buckets = key["buckets"] if key["buckets"] == "*" else ",".join(key["buckets"])
    flags = [flag for flag, on in (("admin", key["admin"]), ("revoked", key["revoked"])) if on]
    limits = [f"{name}={key[field]}" for name, field in (("max-running", "max_running"), ("rate", "rate_per_minute"))
              if key.get(field) is not None]
    return "\t".join([key["id"], key["name"], buckets, " ".join(flags + limits), key.get("last_used_at") or "-"])


def _list(client: Any, args: argparse.Namespace, out: Any, err: Any) -> int:
    keys = client.keys()
    if args.json:
        _print(json.dumps(keys))
    else:
        for key in keys:
            _print(_describe(key))
    return 0


def _revoke(client: Any, args: argparse.Namespace, out: Any, err: Any) -> int:
    key = client.revoke_key(args.key_id)
    _print(f"key {key['id']}: revoked")
    return 0
