"""Importers that fill the local workspace: Mattermost bulk exports, Slack exports, chat logs."""

from recapd.chat.importers.common import ImportFailed, ImportReport
from recapd.chat.importers.irc_log import import_log
from recapd.chat.importers.mattermost import import_mattermost
from recapd.chat.importers.slack import import_slack

__all__ = ["ImportFailed", "ImportReport", "import_log", "import_mattermost", "import_slack"]
