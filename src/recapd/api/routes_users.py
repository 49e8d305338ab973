"""/api/v4/users/me/recap_webhook: the signed-in user's outgoing webhook for finished recaps."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from recapd.api.auth import RuntimeDep, UserId
from recapd.api.errors import check_text, check_url_text
from recapd.store.delivery_store import UserWebhook

router = APIRouter(prefix="/api/v4/users", tags=["users"], dependencies=[Depends(check_url_text)])


class SetWebhook(BaseModel):
    """The body of PUT /users/me/recap_webhook."""

    model_config = ConfigDict(extra="ignore")

    url: str


def webhook_to_dict(hook: UserWebhook) -> dict[str, Any]:
    """A webhook as JSON, with how its last delivery went."""
    return {
        "user_id": hook.user_id,
        "url": hook.url,
        "create_at": hook.create_at,
        "update_at": hook.update_at,
        "last_delivery_at": hook.last_delivery_at,
        "last_error": hook.last_error,
        "last_error_at": hook.last_error_at,
    }


@router.get("/me/recap_webhook")
async def get_recap_webhook(user_id: UserId, rt: RuntimeDep) -> dict[str, Any]:
    """The webhook told of the user's finished recaps; 404 when none is set."""
    return webhook_to_dict(await rt.delivery.get_webhook(user_id))


@router.put("/me/recap_webhook")
async def set_recap_webhook(body: SetWebhook, user_id: UserId, rt: RuntimeDep) -> dict[str, Any]:
    """Set or replace the webhook (an http:// or https:// incoming-webhook URL)."""
    check_text(body.model_dump())
    return webhook_to_dict(await rt.delivery.set_webhook(user_id, body.url))


@router.delete("/me/recap_webhook")
async def delete_recap_webhook(user_id: UserId, rt: RuntimeDep) -> dict[str, str]:
    """Remove the webhook (OK also when none was set)."""
    await rt.delivery.clear_webhook(user_id)
    return {"status": "OK"}
