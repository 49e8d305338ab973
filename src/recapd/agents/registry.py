"""Agents by id: building them from the settings, and listing them for the API and the UI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recapd.agents.base import Agent
from recapd.agents.extractive import ExtractiveAgent
from recapd.config import AgentSettings, Settings
from recapd.model.app_error import AppError

__all__ = ["AgentInfo", "AgentRegistry", "build_agent", "list_agents"]


def _settings_of(agent_id: str, settings: Settings) -> AgentSettings:
    agent = settings.agents.get(agent_id)
    if agent is None:
        known = ", ".join(sorted(settings.agents))
        raise AppError(
            "app.agent.unknown.app_error",
            f"There is no agent {agent_id!r}.",
            detailed_error=f"agent_id={agent_id} known={known}",
            status_code=400,
            params={"agent_id": agent_id},
        )
    return agent


def build_agent(agent_id: str, settings: Settings) -> Agent:
    """A new agent for `agent_id`; AppError 400 `app.agent.unknown.app_error` if none has it."""
    agent = _settings_of(agent_id, settings)
    if agent.type == "openai":
        # Imported here so the offline default never loads the HTTP stack.
        from recapd.agents.openai_agent import OpenAIAgent

        return OpenAIAgent(agent_id, agent)
    if agent.type == "extractive":
        return ExtractiveAgent(agent_id, agent)
    raise AppError(
        "app.agent.unsupported.app_error",
        f"Agent {agent_id!r} has type {agent.type!r}, which this recapd cannot run.",
        detailed_error=f"agent_id={agent_id} type={agent.type}",
        status_code=400,
    )


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """What a user may know about an agent (never its URL or key)."""

    id: str
    display_name: str
    type: str
    model: str
    is_default: bool

    def to_dict(self) -> dict[str, Any]:
        """The API form."""
        return {
            "id": self.id,
            "display_name": self.display_name,
            "type": self.type,
            "model": self.model,
            "is_default": self.is_default,
        }


def list_agents(settings: Settings) -> list[AgentInfo]:
    """The configured agents, the default first, then by id."""
    infos = [
        AgentInfo(
            id=agent_id,
            display_name=agent.display_name or agent_id,
            type=agent.type,
            model=agent.model,
            is_default=agent_id == settings.default_agent,
        )
        for agent_id, agent in settings.agents.items()
    ]
    return sorted(infos, key=lambda info: (not info.is_default, info.id))


class AgentRegistry:
    """Agents built once and reused, so an agent's learned state (structured output support,
    HTTP connections) lasts across recaps."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._agents: dict[str, Agent] = {}

    def get(self, agent_id: str = "") -> Agent:
        """The agent for `agent_id` (the default agent when empty)."""
        key = agent_id or self.settings.default_agent
        agent = self._agents.get(key)
        if agent is None:
            agent = build_agent(key, self.settings)
            self._agents[key] = agent
        return agent

    async def aclose(self) -> None:
        """Close the agents' connections."""
        for agent in self._agents.values():
            close = getattr(agent, "aclose", None)
            if close is not None:
                await close()
        self._agents.clear()
