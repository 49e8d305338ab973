"""The one-off recap form: what the browser sent, and the service's AppErrors in clear words,
next to the field they are about or above the form."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.datastructures import FormData

from recapd.api.errors import capped
from recapd.app.recaps import TITLE_MAX_BYTES, LimitStatus
from recapd.model.app_error import AppError
from recapd.model.recap import MAX_CHANNELS_EXCEEDED, RECAP_PERMISSION_DENIED
from recapd.web.schedule_form import storable

FIELDS = ("title", "channel_ids", "agent_id")

_CHANNEL_ERRORS = {
    RECAP_PERMISSION_DENIED: (
        "You cannot read one of the chosen channels (any more); choose others."
    ),
}


@dataclass
class RecapForm:
    """The form's values as typed (kept as they were when re-shown with errors)."""

    title: str = ""
    channel_ids: list[str] = field(default_factory=list)
    agent_id: str = ""

    @classmethod
    def parse(cls, form: FormData) -> tuple[RecapForm, dict[str, AppError]]:
        """The values posted, and errors for values that cannot even be stored."""
        errors: dict[str, AppError] = {}

        def text(name: str) -> str:
            value = form.get(name, "")
            value = value if isinstance(value, str) else ""
            if not storable(value):
                errors[name] = AppError(
                    f"web.recap_form.{name}.app_error",
                    "This contains characters that cannot be stored.",
                    status_code=400,
                )
                return ""
            return value

        ids = [v for v in form.getlist("channel_ids") if isinstance(v, str) and storable(v)]
        parsed = cls(
            title=text("title"),
            channel_ids=list(dict.fromkeys(ids)),
            agent_id=text("agent_id"),
        )
        return parsed, errors


def field_of(err: AppError) -> str:
    """The form field an AppError of the recap service is about ("" for the whole form)."""
    prefix, suffix = "app.recap.create.", ".app_error"
    if err.id.startswith(prefix) and err.id.endswith(suffix):
        name = err.id[len(prefix) : -len(suffix)]
        return name if name in FIELDS else ""
    if err.id.startswith("web.recap_form."):
        return err.id.split(".")[2]
    if err.id.startswith("app.agent."):
        return "agent_id"
    if err.id in (MAX_CHANNELS_EXCEEDED, RECAP_PERMISSION_DENIED):
        return "channel_ids"
    return ""


def message_of(err: AppError) -> str:
    """What to say about the error, in the words of someone filling in the form (what it
    quotes of the input capped, as in the API)."""
    err = AppError(err.id, capped(err.message), status_code=err.status_code, params=err.params)
    if err.id in _CHANNEL_ERRORS:
        return _CHANNEL_ERRORS[err.id]
    name = field_of(err)
    if name == "channel_ids":
        if "at least one channel" in err.message:
            return "Choose at least one channel."
        if "not a channel id" in err.message:
            return "One of the chosen channels does not exist; choose from the list."
        if err.id == MAX_CHANNELS_EXCEEDED:
            return f"{err.message[:1].upper()}{err.message[1:]}; untick some."
    if name == "title" and err.id.startswith("app.recap.create."):
        return f"The title is too long: at most {TITLE_MAX_BYTES} bytes."
    if name == "agent_id" and err.id == "app.agent.unknown.app_error":
        return f"{err.message} Choose one from the list."
    return err.message[:1].upper() + err.message[1:]


def limits_words(limits: LimitStatus) -> str:
    """The limits above the form, one sentence each: `Today: 2 of 10 recaps. One recap every
    60 minutes.` ("" without limits)."""
    sentences = []
    if limits.max_recaps_per_day >= 0:
        sentences.append(
            f"Today: {limits.recaps_used_today} of {limits.max_recaps_per_day} recaps."
        )
    if limits.cooldown_minutes > 0:
        sentences.append(f"One recap every {limits.cooldown_minutes} minutes.")
    return " ".join(sentences)
