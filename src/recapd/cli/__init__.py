"""The `recapd` command (Typer).

Importing it loads Typer and recapd's model only: every command imports the parts it uses when
it runs, so `recapd version` and `recapd --help` start at once and `recapd schedules list` never
loads the web server, FastAPI, the importers or the LLM client (tests/test_cli_startup.py).
"""

from recapd.cli.main import app

__all__ = ["app"]
