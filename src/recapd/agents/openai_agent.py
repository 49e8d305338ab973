"""The `openai` agent: any OpenAI-compatible chat-completions server through the official SDK.

Retries are ours, not the SDK's (it is built with max_retries=0): exponential backoff with
jitter on 429 (Retry-After honoured, capped), 5xx, timeouts and connection errors, up to the
agent's `max_retries`; any other 4xx fails at once. Structured output (a strict JSON schema) is
asked for when the server has it; with `structured_output="auto"` a server that refuses it is
asked again for plain JSON, and remembered as lacking it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Callable
from typing import Any, Final, cast

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from recapd import metrics
from recapd.agents.base import (
    AgentError,
    AgentResult,
    MergeRequest,
    SummarizeRequest,
    TokenUsage,
    estimate_tokens,
)
from recapd.agents.offline_merge import OfflineMerges
from recapd.agents.output import OutputError, ParsedOutput, parse_output, response_format
from recapd.agents.prompt import (
    PART_LANGUAGE,
    PROMPT_VERSION,
    Prompt,
    language_name,
    merge_prompt,
    summarize_prompt,
)
from recapd.config import AgentSettings
from recapd.retry_after import retry_after_seconds

__all__ = ["OpenAIAgent"]

log = logging.getLogger(__name__)

# Statuses worth trying again: rate limits, request timeouts, conflicts and server errors.
_RETRYABLE_4XX: Final = frozenset({408, 409, 425, 429})
_STRUCTURED_REFUSAL_RE: Final = re.compile(
    r"response_format|json_schema|structured output|not supported|unsupported", re.IGNORECASE
)


def _error_text(exc: openai.APIStatusError) -> str:
    return f"{exc.message} {exc.body!r}"


def _retry_after_s(exc: openai.APIStatusError) -> float | None:
    """Seconds the server asked us to wait (Retry-After, or retry-after-ms), if it said."""
    headers = exc.response.headers
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    # The agent runs on real time (its waits are real sleeps), so the date form is read
    # against the wall clock.
    return retry_after_seconds(headers.get("retry-after"), time.time())


class OpenAIAgent:
    """An agent backed by an OpenAI-compatible server (OpenAI, Azure, Ollama, vLLM, ...)."""

    def __init__(
        self,
        agent_id: str,
        settings: AgentSettings,
        *,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 30.0,
        retry_after_max_s: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        self.id = agent_id
        self.settings = settings
        # The answer shares the model's context with the prompt.
        self.context_tokens = max(512, settings.context_tokens - settings.max_output_tokens)
        # What besides the posts shapes a summarize answer: a cached part of another model,
        # prompt or sampling setting is never served.
        self.cache_version = (
            f"openai:{settings.model}:p{PROMPT_VERSION}:t{settings.temperature}"
            f":o{settings.max_output_tokens}"
        )
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.retry_after_max_s = retry_after_max_s
        # None until a server refuses json_schema (then False) in "auto" mode.
        self.structured_output_supported: bool | None = (
            None if settings.structured_output == "auto" else settings.structured_output != "off"
        )
        self._max_tokens_param = "max_tokens"
        self._rng = rng or random.Random()
        self._client: AsyncOpenAI | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        # Merges without a model call, shared by the readers the parts do not name.
        self._offline = OfflineMerges()

    # -- the Agent protocol ---------------------------------------------------------------

    async def summarize(self, request: SummarizeRequest) -> AgentResult:
        """Highlights and action items of the request's posts, by one model call."""
        if not request.posts:
            return AgentResult()
        return await self._complete(
            "summarize",
            lambda json_in_prompt: summarize_prompt(request, json_in_prompt=json_in_prompt),
        )

    async def merge(self, request: MergeRequest) -> AgentResult:
        """One result for the reader from the parts' results.

        The parts are already the model's words, in English, for every reader alike. When the
        reader asks for nothing the parts lack (no custom instructions, English), they are
        combined without a model call: near-duplicates folded, items that concern the reader
        first (the offline agent's merge). Otherwise one model call (in groups when they do not
        fit) rewrites them for the reader. This keeps the reduce stage, which runs once per
        reader, free for most readers: 300 readers of a channel at 09:00 cost its parts once.
        """
        partials = [
            p for p in request.partials if p.highlights or p.action_items or p.open_questions
        ]
        if not partials:
            return AgentResult()
        if not _needs_model(request):
            return self._offline.merge(_with_partials(request, partials))
        probe = merge_prompt(_with_partials(request, partials), json_in_prompt=True)
        if estimate_tokens(probe.system + probe.user) > self.context_tokens and len(partials) > 2:
            # Too big for one call: merge each half, then the two halves.
            middle = len(partials) // 2
            left = await self.merge(_with_partials(request, partials[:middle]))
            right = await self.merge(_with_partials(request, partials[middle:]))
            merged = await self.merge(_with_partials(request, [left, right]))
            merged.usage = left.usage + right.usage + merged.usage
            return merged
        return await self._complete(
            "merge",
            lambda json_in_prompt: merge_prompt(
                _with_partials(request, partials), json_in_prompt=json_in_prompt
            ),
        )

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        if self._client is not None:
            await self._client.close()
            self._client = None

    # -- one call, with retries -----------------------------------------------------------

    def _client_for_loop(self) -> AsyncOpenAI:
        # An HTTP connection pool belongs to one event loop; a CLI may run several in turn.
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = AsyncOpenAI(
                base_url=self.settings.base_url or None,
                # Local servers need no key, but the SDK insists on one.
                api_key=self.settings.api_key or "unused",
                timeout=self.settings.timeout_seconds,
                max_retries=0,
            )
            self._client_loop = loop
        return self._client

    def _use_structured(self) -> bool:
        return self.structured_output_supported is not False

    def _backoff_s(self, retry: int) -> float:
        """Equal jitter: half fixed, half random, so failures do not retry in lockstep."""
        exp = min(self.backoff_max_s, self.backoff_base_s * 2.0 ** (retry - 1))
        return exp / 2 + self._rng.random() * exp / 2

    async def _create(self, prompt: Prompt, structured: bool) -> ChatCompletion:
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": prompt.system},
            {"role": "user", "content": prompt.user},
        ]
        extra: dict[str, Any] = {self._max_tokens_param: self.settings.max_output_tokens}
        if structured:
            extra["response_format"] = response_format()
        completion: ChatCompletion = await self._client_for_loop().chat.completions.create(
            model=self.settings.model,
            messages=messages,
            temperature=self.settings.temperature,
            **extra,
        )
        return completion

    async def _metered_create(
        self, operation: str, prompt: Prompt, structured: bool
    ) -> ChatCompletion:
        """One request, counted and timed (recapd_agent_* metrics), with its tokens when the
        server reported them."""
        with metrics.agent_call(self.id, operation):
            try:
                completion = await self._create(prompt, structured)
            except Exception as exc:
                metrics.record_agent_error(self.id, _error_reason(exc))
                raise
        if completion.usage is not None:
            metrics.record_agent_tokens(
                self.id, completion.usage.prompt_tokens, completion.usage.completion_tokens
            )
        return completion

    async def _complete(self, operation: str, render: Callable[[bool], Prompt]) -> AgentResult:
        usage = TokenUsage()
        retries = 0
        answered_invalid = False
        while True:
            structured = self._use_structured()
            prompt = render(not structured)
            failure: Exception
            delay: float | None = None
            try:
                completion = await self._metered_create(operation, prompt, structured)
            except openai.APIStatusError as exc:
                if self._adapt_to(exc, structured):
                    continue
                status = exc.status_code
                if status < 500 and status not in _RETRYABLE_4XX:
                    raise AgentError(
                        f"{self.id}: the server refused the request (HTTP {status}): {exc.message}",
                        retryable=False,
                    ) from exc
                failure = exc
                if status == 429:
                    asked = _retry_after_s(exc)
                    if asked is not None:
                        delay = min(asked, self.retry_after_max_s)
            except openai.APITimeoutError as exc:
                failure = exc
            except openai.APIConnectionError as exc:
                failure = exc
            except (openai.APIResponseValidationError, ValueError) as exc:
                # A body that is not a chat completion (the SDK raises a bare JSONDecodeError):
                # a proxy or server fault, worth another try.
                failure = exc
            else:
                usage += _usage_of(completion, prompt)
                try:
                    parsed = _parse(completion, prompt, self.id)
                except AgentError:
                    metrics.record_agent_error(self.id, "declined")
                    raise
                except OutputError as exc:
                    metrics.record_agent_error(self.id, "invalid_answer")
                    # A model sometimes botches one answer; asking once more is cheap.
                    if answered_invalid:
                        raise AgentError(
                            f"{self.id}: the model's answer is not a valid recap: {exc}",
                            retryable=False,
                        ) from exc
                    answered_invalid = True
                    log.warning("agent %s: invalid answer (%s); asking again", self.id, exc)
                    continue
                if parsed.dropped_citations:
                    log.info(
                        "agent %s: dropped %d citations of posts not in the input",
                        self.id,
                        parsed.dropped_citations,
                    )
                return AgentResult(
                    parsed.highlights, parsed.action_items, usage, parsed.open_questions
                )
            if retries >= self.settings.max_retries:
                raise AgentError(
                    f"{self.id}: {_describe(failure)} (gave up after {retries + 1} attempts)",
                    retryable=True,
                ) from failure
            retries += 1
            wait = self._backoff_s(retries) if delay is None else delay
            log.warning(
                "agent %s: %s; retry %d of %d in %.2fs",
                self.id,
                _describe(failure),
                retries,
                self.settings.max_retries,
                wait,
            )
            await asyncio.sleep(wait)

    def _adapt_to(self, exc: openai.APIStatusError, structured: bool) -> bool:
        """True when a 4xx was about an optional feature we can drop; drops it for next time."""
        if exc.status_code not in (400, 404, 415, 422, 501):
            return False
        text = _error_text(exc)
        # Newer OpenAI models refuse max_tokens and want max_completion_tokens instead.
        if self._max_tokens_param == "max_tokens" and "max_completion_tokens" in text:
            self._max_tokens_param = "max_completion_tokens"
            return True
        refuses_schema = exc.param == "response_format" or _STRUCTURED_REFUSAL_RE.search(text)
        if structured and self.settings.structured_output == "auto" and refuses_schema:
            log.warning(
                "agent %s: the server refused structured output (%s); using plain JSON from now on",
                self.id,
                exc.message,
            )
            self.structured_output_supported = False
            return True
        return False


def _needs_model(request: MergeRequest) -> bool:
    """True when the reader wants something the parts lack: custom instructions or another
    language than the parts'."""
    if request.custom_instructions.strip():
        return True
    return language_name(request.language) != language_name(PART_LANGUAGE)


def _with_partials(request: MergeRequest, partials: list[AgentResult]) -> MergeRequest:
    return MergeRequest(
        channel_id=request.channel_id,
        channel_name=request.channel_name,
        partials=partials,
        reader_id=request.reader_id,
        reader_username=request.reader_username,
        custom_instructions=request.custom_instructions,
        language=request.language,
    )


def _error_reason(exc: Exception) -> str:
    """The `reason` label of a failed request."""
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code == 429:
            return "rate_limited"
        return "server_error" if exc.status_code >= 500 else "client_error"
    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection"
    if isinstance(exc, openai.APIResponseValidationError | ValueError):
        return "invalid_response"
    return "internal"


def _describe(exc: Exception) -> str:
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}: {exc.message}"
    if isinstance(exc, openai.APITimeoutError):
        return "the request timed out"
    if isinstance(exc, openai.APIConnectionError):
        return f"cannot reach the server ({exc.__cause__ or exc.message})"
    if isinstance(exc, ValueError):
        return f"the server's answer is not a valid chat completion ({exc})"
    return f"{type(exc).__name__}: {exc}"


def _usage_of(completion: ChatCompletion, prompt: Prompt) -> TokenUsage:
    if completion.usage is not None:
        return TokenUsage(completion.usage.prompt_tokens, completion.usage.completion_tokens)
    # Some servers leave usage out: estimate it so budgets and reports stay meaningful.
    content = completion.choices[0].message.content if completion.choices else None
    return TokenUsage(
        estimate_tokens(prompt.system) + estimate_tokens(prompt.user),
        estimate_tokens(content or ""),
    )


def _parse(completion: ChatCompletion, prompt: Prompt, agent_id: str) -> ParsedOutput:
    if not completion.choices:
        raise OutputError("the answer has no choices")
    message = completion.choices[0].message
    refusal = cast(str | None, getattr(message, "refusal", None))
    if refusal:
        raise AgentError(f"{agent_id}: the model declined: {refusal}", retryable=False)
    if not message.content:
        raise OutputError("the answer is empty")
    try:
        return parse_output(message.content, prompt.allowed_post_ids)
    except OutputError as exc:
        if completion.choices[0].finish_reason == "length":
            raise OutputError(f"{exc} (the answer was cut at max_output_tokens)") from exc
        raise
