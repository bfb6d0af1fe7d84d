"""Handoff's workflows: one long-running `ConversationWorkflow` per conversation."""

from workflows.conversation import ConversationWorkflow

__all__ = ["ConversationWorkflow"]
