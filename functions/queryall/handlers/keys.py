"""POST/GET /query-all/keys and DELETE /query-all/keys/{keyId}: managed API keys (admin only)."""

from __future__ import annotations

import time

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from queryall.dal.managed_keys import ManagedKeyStore
from queryall.handlers.http_api import build_resolver, documented, http_handler, json_response, route
from queryall.logic.auth import require_key_manager
from queryall.logic.managed_keys import create_key, list_keys, revoke_key
from queryall.models.keys import CreatedKeyResponse, CreateKeyRequest, KeyListResponse, KeyResponse
from queryall.observability import logger
from queryall.settings import get_settings

router = Router()


def _store() -> ManagedKeyStore:
    require_key_manager(router.context["principal"])
    return ManagedKeyStore(get_settings().require("api_keys_table"))


@router.post("/query-all/keys", **route(
    "Create an API key (admin only); its secret is shown only here",
    {201: documented("The new key, with its secret", "keys.CreatedKeyResponse")}, 400, 401, 403))
def create(body: CreateKeyRequest) -> Response[str]:
    created = create_key(_store(), body, time.time())
    logger.info("api key created", extra={"key_id": created.id, "admin": created.admin})
    return json_response(201, CreatedKeyResponse(data=created).model_dump_json())


@router.get("/query-all/keys", **route(
    "List the API keys (admin only), without their secrets",
    {200: documented("Every managed key, oldest first", "keys.KeyListResponse")}, 401, 403))
def list_all() -> Response[str]:
    return json_response(200, KeyListResponse(data=list_keys(_store())).model_dump_json())


@router.delete("/query-all/keys/<keyId>", **route(
    "Revoke an API key (admin only; within a minute everywhere)",
    {200: documented("The key, revoked (also when it already was)", "keys.KeyResponse")}, 401, 403, 404))
def revoke(keyId: str) -> Response[str]:  # noqa: N803  (the route's parameter name)
    key = revoke_key(_store(), keyId, time.time())
    logger.info("api key revoked", extra={"key_id": key.id})
    return json_response(200, KeyResponse(data=key).model_dump_json())


app = build_resolver(router)

handler = http_handler(app, settings=("api_keys_table",))
