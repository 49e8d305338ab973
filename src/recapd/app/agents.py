"""The configured agents of this node, built once each."""

from __future__ import annotations

import threading

from recapd.agents.base import Agent
from recapd.agents.registry import build_agent
from recapd.config import Settings


class AgentPool:
    """Agents by id, built on first use from the settings (unknown id: AppError 400)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._agents: dict[str, Agent] = {}
        self._lock = threading.Lock()

    def get(self, agent_id: str) -> Agent:
        """The agent with this id."""
        with self._lock:
            agent = self._agents.get(agent_id)
            if agent is None:
                agent = build_agent(agent_id, self._settings)
                self._agents[agent_id] = agent
            return agent

    def apply_settings(self, settings: Settings) -> None:
        """Forget built agents so the next use sees the new settings."""
        with self._lock:
            self._settings = settings
            self._agents.clear()
