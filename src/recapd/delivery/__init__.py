"""Telling the user: recaps rendered as text, direct messages, webhooks, live page events."""
