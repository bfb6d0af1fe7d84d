"""`python -m handoff.cli`: the same command as `handoff`."""

from handoff.cli import app

app()
