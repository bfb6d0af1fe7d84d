"""Handoff: a durable conversation-lifecycle engine for customer-support chat, on Temporal."""

TASK_QUEUE = "handoff-conversations"
