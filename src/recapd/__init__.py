"""recapd: scheduled AI recaps of team-chat channels."""

__version__ = "0.1.0"
