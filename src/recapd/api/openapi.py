"""The OpenAPI document at /openapi.json, true to what the server answers: per operation the
status codes it really sends (never FastAPI's 422: every validation failure is a 400 AppError),
the AppError body of every error, the original's Recap/ScheduledRecap/limit shapes, and bearer
authentication on the operations that need it. tests/test_api_fuzz.py checks the status codes
and bodies against it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, APIRouter

from recapd.api.auth import current_user_id
from recapd.api.errors import check_url_text
from recapd.model.scheduled_recap import ChannelMode, TimePeriod

_REF = "#/components/schemas/"

_STR: dict[str, Any] = {"type": "string"}
_INT: dict[str, Any] = {"type": "integer"}
_BOOL: dict[str, Any] = {"type": "boolean"}
_STRS: dict[str, Any] = {"type": "array", "items": _STR}


def _obj(props: dict[str, Any], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": [k for k in props if k not in optional],
    }


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": _REF + name}


_CITED = _obj({"text": _STR, "post_ids": _STRS})
SCHEMAS: dict[str, Any] = {
    "AppError": {
        **_obj(
            {
                "id": _STR,
                "message": _STR,
                "detailed_error": _STR,
                "request_id": _STR,
                "status_code": _INT,
            }
        ),
        "description": "Every error: Mattermost's AppError; `id` is stable.",
    },
    "StatusOK": _obj({"status": {"type": "string", "enum": ["OK"]}}),
    "RecapChannel": {
        **_obj(
            {
                "id": _STR,
                "recap_id": _STR,
                "channel_id": _STR,
                "channel_name": _STR,
                "highlights": _STRS,
                "action_items": _STRS,
                "source_post_ids": _STRS,
                "create_at": _INT,
                "highlight_items": {"type": "array", "items": _CITED},
                "action_item_items": {
                    "type": "array",
                    "items": _obj(
                        {
                            "text": _STR,
                            "owner": _STR,
                            "post_ids": _STRS,
                            "explicit": {"type": "boolean"},
                        }
                    ),
                },
                "open_questions": {"type": "array", "items": _CITED},
                "notice": _STR,
                "status": {"type": "string", "enum": ["success", "failed"]},
                "error": _STR,
            }
        ),
        "description": "The original's RecapChannel (highlights and action_items are the "
        "items' text) and recapd's additions: the same items with the posts they cite "
        "(highlight_items, action_item_items), open questions, a notice, the channel's status.",
    },
    "Recap": {
        **_obj(
            {
                "id": _STR,
                "user_id": _STR,
                "title": _STR,
                "create_at": _INT,
                "update_at": _INT,
                "delete_at": _INT,
                "read_at": _INT,
                "viewed_at": _INT,
                "total_message_count": _INT,
                "status": {
                    "type": "string",
                    "enum": ["pending", "processing", "completed", "failed"],
                },
                "bot_id": _STR,
                "scheduled_recap_id": _STR,
                "skip_reason": _STR,
                "channels": {"type": "array", "items": _ref("RecapChannel")},
                "scheduled_for": _INT,
                "error": _STR,
            },
            optional=("scheduled_recap_id", "skip_reason", "channels"),
        ),
        "description": "The original's Recap (channels left out when there are none, and "
        "always in lists); recapd adds scheduled_for and error (why it failed).",
    },
    "ScheduledRecap": _obj(
        {
            "id": _STR,
            "user_id": _STR,
            "title": _STR,
            "days_of_week": _INT,
            "time_of_day": _STR,
            "timezone": _STR,
            "time_period": {"type": "string", "enum": [p.value for p in TimePeriod]},
            "next_run_at": _INT,
            "last_run_at": _INT,
            "run_count": _INT,
            "channel_mode": {"type": "string", "enum": [m.value for m in ChannelMode]},
            "channel_ids": _STRS,
            "custom_instructions": _STR,
            "agent_id": _STR,
            "is_recurring": _BOOL,
            "enabled": _BOOL,
            "create_at": _INT,
            "update_at": _INT,
            "delete_at": _INT,
            "consecutive_failures": _INT,
            "pause_reason": _STR,
            "last_scheduled_for": _INT,
        },
        optional=("channel_ids", "custom_instructions"),
    ),
    "RecapLimitStatus": _obj(
        {
            "effective_limits": _obj(
                {
                    "max_recaps_per_day": _INT,
                    "max_scheduled_recaps": _INT,
                    "max_channels_per_recap": _INT,
                    "max_posts_per_recap": _INT,
                    "max_tokens_per_recap": _INT,
                    "max_posts_per_day": _INT,
                    "cooldown_minutes": _INT,
                    "source": _STR,
                    "source_id": _STR,
                }
            ),
            "daily": _obj({"used": _INT, "limit": _INT, "reset_at": _INT}),
            "cooldown": _obj(
                {"is_active": _BOOL, "available_at": _INT, "retry_after_seconds": _INT}
            ),
            "daily_posts": _obj({"used": _INT, "limit": _INT}),
        }
    ),
    "MarkRecapsViewedResponse": _obj({"recap_ids": _STRS}),
    "SlashReply": _obj({"response_type": _STR, "text": _STR}),
    "RunNowResponse": _obj(
        {"status": {"type": "string", "enum": ["OK"]}, "job_id": _STR, "job_status": _STR}
    ),
}

_WHY = {
    400: "Bad request: a missing or invalid parameter or body field, or a limit reached.",
    401: "No valid session: no token, or one that is unknown, revoked or expired.",
    403: "Not allowed: a channel the user cannot read, or a route for administrators.",
    404: "Not found: no such object, or another user's (recapd never tells them apart).",
    409: "Conflict: the object changed or is being worked on; try again.",
    413: "The request body is larger than the server takes.",
    429: "Too many requests: the cooldown between manual recaps is running (Retry-After).",
    501: "AI recaps are turned off on this server.",
    502: "With chat = mattermost: the Mattermost server failed or could not be reached.",
}

# What each recap and scheduled-recap operation sends besides its success (every such
# operation can also answer 400 for a bad parameter, 401, 413 and 502).
_RECAP_ERRORS: dict[tuple[str, str], tuple[int, ...]] = {
    ("post", "/api/v4/recaps"): (403, 429, 501),
    ("get", "/api/v4/recaps"): (501,),
    ("get", "/api/v4/recaps/limit_status"): (501,),
    ("post", "/api/v4/recaps/mark_viewed"): (501,),
    ("get", "/api/v4/recaps/{recap_id}"): (404, 501),
    ("post", "/api/v4/recaps/{recap_id}/read"): (404, 501),
    ("post", "/api/v4/recaps/{recap_id}/regenerate"): (404, 409, 501),
    ("delete", "/api/v4/recaps/{recap_id}"): (404, 501),
    ("post", "/api/v4/scheduled_recaps"): (403, 501),
    ("get", "/api/v4/scheduled_recaps"): (501,),
    ("get", "/api/v4/scheduled_recaps/{scheduled_recap_id}"): (404, 501),
    ("put", "/api/v4/scheduled_recaps/{scheduled_recap_id}"): (403, 404, 409, 501),
    ("delete", "/api/v4/scheduled_recaps/{scheduled_recap_id}"): (404, 501),
    ("post", "/api/v4/scheduled_recaps/{scheduled_recap_id}/pause"): (404, 501),
    ("post", "/api/v4/scheduled_recaps/{scheduled_recap_id}/resume"): (404, 501),
    ("post", "/api/v4/scheduled_recaps/{scheduled_recap_id}/run_now"): (404, 409, 501),
}
# Success bodies of those operations (schema component names; a list is "[Name]").
_RECAP_BODIES: dict[tuple[str, str], str] = {
    ("post", "/api/v4/recaps"): "Recap",
    ("get", "/api/v4/recaps"): "[Recap]",
    ("get", "/api/v4/recaps/limit_status"): "RecapLimitStatus",
    ("post", "/api/v4/recaps/mark_viewed"): "MarkRecapsViewedResponse",
    ("get", "/api/v4/recaps/{recap_id}"): "Recap",
    ("post", "/api/v4/recaps/{recap_id}/read"): "Recap",
    ("post", "/api/v4/recaps/{recap_id}/regenerate"): "Recap",
    ("delete", "/api/v4/recaps/{recap_id}"): "StatusOK",
    ("post", "/api/v4/scheduled_recaps"): "ScheduledRecap",
    ("get", "/api/v4/scheduled_recaps"): "[ScheduledRecap]",
    ("get", "/api/v4/scheduled_recaps/{scheduled_recap_id}"): "ScheduledRecap",
    ("put", "/api/v4/scheduled_recaps/{scheduled_recap_id}"): "ScheduledRecap",
    ("delete", "/api/v4/scheduled_recaps/{scheduled_recap_id}"): "StatusOK",
    ("post", "/api/v4/scheduled_recaps/{scheduled_recap_id}/pause"): "ScheduledRecap",
    ("post", "/api/v4/scheduled_recaps/{scheduled_recap_id}/resume"): "ScheduledRecap",
    ("post", "/api/v4/scheduled_recaps/{scheduled_recap_id}/run_now"): "RunNowResponse",
}
# The other routers' errors beyond the generic ones (400/401/404/413 found from the route).
_OTHER_ERRORS: dict[tuple[str, str], tuple[int, ...]] = {
    ("get", "/api/v4/jobs"): (403,),
    ("get", "/api/v4/jobs/type/{job_type}"): (403,),
    ("get", "/api/v4/jobs/{job_id}"): (403,),
    ("post", "/api/v4/jobs/{job_id}/cancel"): (403, 409),
    ("post", "/api/v4/posts"): (403,),
    ("get", "/api/v4/users/me/recap_webhook"): (404,),
    ("delete", "/api/v4/users/me/recap_webhook"): (404,),
}
# The slash command answers its refusals as Mattermost command responses, not AppErrors.
_SLASH = ("post", "/api/v4/slash/recap")
_SLASH_ERRORS = {
    "400": "The command's form could not be read, or came without a valid user and channel.",
    "401": "The command's token is not RECAPD_MATTERMOST_SLASH_TOKEN.",
}


def _depends_on(dep: Dependant, call: Any) -> bool:
    return dep.call is call or any(_depends_on(d, call) for d in dep.dependencies)


def _takes_input(route: APIRoute) -> bool:
    """True when a request can carry something to refuse (400): parameters, a body, or text
    checked by check_url_text (any query string on those routers)."""
    dep = route.dependant
    params = dep.path_params or dep.query_params or dep.body_params
    return (
        bool(params)
        or _depends_on(dep, check_url_text)
        or "requestBody" in (route.openapi_extra or {})
    )


def _body(name: str) -> dict[str, Any]:
    if name.startswith("["):
        return {"type": "array", "items": _ref(name[1:-1])}
    return _ref(name)


def _error_responses(codes: set[int]) -> dict[str, Any]:
    return {
        str(code): {
            "description": _WHY.get(code, "Error"),
            "content": {"application/json": {"schema": _ref("AppError")}},
        }
        for code in sorted(codes)
    }


def build(app: FastAPI, routers: Sequence[APIRouter]) -> dict[str, Any]:
    """The document: FastAPI's, with the real answers of each /api/v4 operation of `routers`
    (the routers included in `app`; their routes carry the full paths)."""
    doc = get_openapi(title=app.title, version=app.version, routes=app.routes)
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas.update(SCHEMAS)
    components["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "A recapd personal access token, or (chat = mattermost) the "
            "user's Mattermost personal access or session token.",
        }
    }
    for route in (r for router in routers for r in router.routes):
        if not isinstance(route, APIRoute) or not route.path.startswith("/api/v4/"):
            continue
        signed_in = _depends_on(route.dependant, current_user_id)
        for method in sorted(route.methods or ()):
            key = (method.lower(), route.path)
            op = doc["paths"][route.path][key[0]]
            responses: dict[str, Any] = op.setdefault("responses", {})
            responses.pop("422", None)
            codes = {400} if _takes_input(route) else set()
            if key == _SLASH:
                responses.update(
                    {
                        code: {
                            "description": why,
                            "content": {"application/json": {"schema": _ref("SlashReply")}},
                        }
                        for code, why in _SLASH_ERRORS.items()
                    }
                )
                responses.update(_error_responses({413}))
                continue
            if signed_in:
                codes |= {401, 502}
                op["security"] = [{"bearer": []}]
            if route.dependant.path_params:
                codes.add(404)
            if method in ("POST", "PUT", "PATCH"):
                codes.add(413)
            codes |= set(_RECAP_ERRORS.get(key, ())) | set(_OTHER_ERRORS.get(key, ()))
            responses.update(_error_responses(codes))
            if key in _RECAP_BODIES:
                ok = str(route.status_code or 200)
                responses[ok] = {
                    "description": responses.get(ok, {}).get("description", "Success"),
                    "content": {"application/json": {"schema": _body(_RECAP_BODIES[key])}},
                }
    return doc


def install(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    """Serve `build(app)` (made once, on first use) at /openapi.json and /docs."""
    made: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        if not made:
            made.append(build(app, routers))
            app.openapi_schema = made[0]
        return made[0]

    app.openapi = openapi  # type: ignore[method-assign]
