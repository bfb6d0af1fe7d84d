"""`handoff`: the ops command line.

`handoff up` runs everything on the embedded default (a Temporal dev server on a SQLite file,
the worker and the HTTP API, all under one data folder) and stops it all cleanly on Ctrl-C or
SIGTERM; `worker` and `api` run one part against a configured Temporal and database; the
`conversations` commands and `stats` read what ops need; `demo` plays a scripted conversation.

Errors a person can act on (a refused command, an unknown conversation, a server that does not
answer, a port in use) end in a one-line message and exit code 1, never a traceback.

The modules: `main` (the app, output, errors), `up`, `parts` (worker, api), `servers` (what
they share to run servers), `conversations` and `history` (list, show, event history), `stats`,
`demo`, `connections` (database and Temporal), `format` (times, durations, transcripts).
This file builds the command tree.
"""

from __future__ import annotations

import typer

from handoff.cli import agents, conversations, db, demo, parts, people, stats, up
from handoff.cli.main import app, conversations_app

agents_app = typer.Typer(help="The team at work: status, conversations held, capacity.", no_args_is_help=True)
agents_app.command("list")(agents.list_agents)
agents_app.command("status")(agents.set_status)
agents_app.command("stats")(agents.agent_stats)
app.add_typer(agents_app, name="agents")

db_app = typer.Typer(help="The project database: schema migrations.", no_args_is_help=True)
db_app.command("upgrade")(db.upgrade)
app.add_typer(db_app, name="db")

app.command()(up.up)
app.command()(parts.worker)
app.command()(parts.api)
conversations_app.command("list")(conversations.list_conversations)
conversations_app.command("show")(conversations.show_conversation)
conversations_app.command("history")(conversations.conversation_history)
conversations_app.command("suggestions")(conversations.conversation_suggestions)
conversations_app.command("exclude-from-suggestions")(conversations.conversation_exclude)
conversations_app.command("transfer")(people.transfer)
conversations_app.command("release")(people.release)
conversations_app.command("note")(people.note)
app.command()(stats.stats)
app.command()(demo.demo)

__all__ = ["app"]
