"""A Mattermost server as a chat source, over REST API v4 (see docs/mattermost.md)."""
