"""POST /api/v4/slash/recap: the request URL of Mattermost's `/recap` custom slash command.

Mattermost sends a form (`token, team_id, channel_id, user_id, user_name, command, text,
response_url, trigger_id, ...`) and shows the JSON CommandResponse it gets back. The command's
token (setting `mattermost_slash_token`) is checked in constant time, from the form or from
`Authorization: Token ...`; a wrong one is a 401, a command recapd cannot act on an ephemeral
200 saying why (Mattermost shows nothing but an error for any other status).
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from recapd.api.auth import runtime_of
from recapd.app.slash_command import SlashReply, SlashRequest
from recapd.model.ids import is_valid_id

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v4/slash", tags=["slash"])

_FORM_DOC: dict[str, Any] = {
    "requestBody": {
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["token", "user_id", "channel_id"],
                    "properties": {
                        name: {"type": "string"}
                        for name in (
                            "token",
                            "team_id",
                            "team_domain",
                            "channel_id",
                            "channel_name",
                            "user_id",
                            "user_name",
                            "command",
                            "text",
                            "response_url",
                            "trigger_id",
                        )
                    },
                }
            }
        }
    }
}


def _ephemeral(text: str, status_code: int = 200) -> JSONResponse:
    return JSONResponse(SlashReply(text).to_dict(), status_code=status_code)


def token_matches(given: str, expected: str) -> bool:
    """Constant-time comparison; an unset expected token matches nothing."""
    if not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


@router.post("/recap", openapi_extra=_FORM_DOC)
async def recap_command(request: Request) -> JSONResponse:
    """Run a `/recap` command as the Mattermost user who typed it; an ephemeral answer."""
    rt = runtime_of(request)
    # The form's size is capped (64 KiB, counted as received) by api/body_limit.py.
    try:
        form = await request.form()
    except Exception:  # an unreadable body is bad input, whatever the parser raised
        return _ephemeral("The command could not be read.", 400)
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    scheme, _, header_token = request.headers.get("Authorization", "").partition(" ")
    given = fields.get("token", "") or (header_token.strip() if scheme.lower() == "token" else "")
    if not token_matches(given, rt.settings.mattermost_slash_token):
        return _ephemeral(
            "This /recap command is not recapd's: its token does not match "
            "RECAPD_MATTERMOST_SLASH_TOKEN.",
            401,
        )
    user_id = fields.get("user_id", "")
    channel_id = fields.get("channel_id", "")
    team_id = fields.get("team_id", "")
    if (
        not is_valid_id(user_id)
        or not is_valid_id(channel_id)
        or (team_id and not is_valid_id(team_id))
    ):
        return _ephemeral("The command came without a valid user_id and channel_id.", 400)
    request.state.user_id = user_id  # for the request log
    req = SlashRequest(
        user_id=user_id,
        team_id=team_id,
        channel_id=channel_id,
        text=fields.get("text", ""),
        command=fields.get("command", "/recap"),
        user_name=fields.get("user_name", ""),
        response_url=fields.get("response_url", ""),
    )
    reply = await rt.slash.respond(req)
    return JSONResponse(reply.to_dict())
