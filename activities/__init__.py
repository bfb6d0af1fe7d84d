"""Handoff's activities: the bot's answers and the recording of facts in the database."""

from activities.conversation import ConversationActivities

__all__ = ["ConversationActivities"]
