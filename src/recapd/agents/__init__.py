"""Agents: what turns a channel's posts into highlights and action items (an offline extractive
summarizer, any OpenAI-compatible LLM server, ...)."""
