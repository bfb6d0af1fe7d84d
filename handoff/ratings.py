"""Satisfaction ratings (issue 9): one per conversation an agent closed, within the rating
window. One home for the rule, shared by the API (`POST /conversations/{id}/rating`) and the
Python client (`HandoffClient.rate`). Ratings are written by the caller into the project
database, not through Temporal: a closed conversation's workflow has completed."""

from __future__ import annotations

from datetime import datetime, timedelta

from handoff.models import Status
from handoff.store import Rating, Store

MIN_SCORE, MAX_SCORE = 1, 5


class RatingRefused(Exception):
    """The rating was not kept; `gone` when the window is over (HTTP 410), else a conflict (409)."""

    def __init__(self, reason: str, *, gone: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.gone = gone


def rate(
    store: Store, conversation_id: str, score: int, comment: str | None, window: timedelta, now: datetime
) -> Rating:
    """Keep the customer's rating of `conversation_id`, or refuse it saying why."""
    if not MIN_SCORE <= score <= MAX_SCORE:
        raise ValueError(f"the score must be from {MIN_SCORE} to {MAX_SCORE}, not {score}")
    summary = store.summary(conversation_id)
    if summary is None or summary.status is not Status.CLOSED or summary.closed_at is None:
        raise RatingRefused("only a closed conversation can be rated")
    if summary.closed_by is None:
        raise RatingRefused("only a conversation an agent closed can be rated")
    if now > summary.closed_at + window:
        raise RatingRefused("the time to rate this conversation is over", gone=True)
    rating = Rating(conversation_id, score, comment, now, summary.closed_by)
    if not store.add_rating(rating):
        raise RatingRefused("this conversation was already rated")
    return rating
