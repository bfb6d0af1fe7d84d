"""The handover summary (issue 14, item 2): what the agent taking a conversation over from the
bot needs to read first, written as an internal note (never shown to the customer).

A pure function of the transcript, so the rules layer (handoff/lifecycle.py) adds it in the same
step as the take-over: it rides along with the take-over's facts and costs no Temporal action.
It reports, without judging: what the customer asked, what the bot answered, where the bot had
no answer (its fallback), and when and how the customer asked for a person.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from handoff.models import EntryKind, TranscriptEntry

AUTHOR = "Handover summary"
QUOTE_CHARS = 120
"""Each quoted message is cut to this many characters: the summary is read at a glance."""
MAX_QUOTED = 3


def quote(text: str) -> str:
    flat = " ".join(text.split())
    return f"“{flat if len(flat) <= QUOTE_CHARS else flat[: QUOTE_CHARS - 1] + '…'}”"


def bot_session(transcript: Sequence[TranscriptEntry]) -> list[TranscriptEntry]:
    """The entries since an agent last held the conversation (the whole transcript if none
    did): the bot session the agent is taking over."""
    session: list[TranscriptEntry] = []
    for entry in transcript:
        if entry.kind is EntryKind.AGENT:
            session = []
        else:
            session.append(entry)
    return session


def summary(
    transcript: Sequence[TranscriptEntry], fallback_seqs: set[int], requested_at: datetime | None
) -> str | None:
    """The summary of the bot session before a take-over, or None when there was none (the
    customer said nothing to the bot since an agent last held the conversation)."""
    session = bot_session(transcript)
    asked = [e for e in session if e.kind is EntryKind.CUSTOMER]
    if not asked:
        return None
    answers = [e for e in session if e.kind is EntryKind.BOT]
    missed = [e for e in answers if e.seq in fallback_seqs]
    lines = [f"The customer wrote {len(asked)} message{'s' if len(asked) != 1 else ''} to the bot:"]
    shown = asked[-MAX_QUOTED:]
    if len(asked) > len(shown):
        lines.append(f"… {len(asked) - len(shown)} earlier …")
    lines += [f"- {quote(e.text)}" for e in shown]
    answered = len(answers) - len(missed)
    lines.append(
        f"The bot answered {answered} from the knowledge base"
        + (f"; it had no answer to {len(missed)}:" if missed else ".")
    )
    for miss in missed[-MAX_QUOTED:]:
        question = max((e for e in asked if e.seq < miss.seq), key=lambda e: e.seq, default=None)
        if question is not None:
            lines.append(f"- {quote(question.text)}")
    if requested_at is not None:
        lines.append(f"A person was requested at {requested_at:%H:%M} UTC.")
    else:
        lines.append("No person was requested: the agent took the conversation from the bot.")
    return "\n".join(lines)
