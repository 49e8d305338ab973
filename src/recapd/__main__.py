"""`python -m recapd` runs the command line."""

from recapd.cli import app

app(prog_name="recapd")
