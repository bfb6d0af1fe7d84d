"""The API's routes, one module per audience: the customer's widget, agents' commands and
conversation view, the live columns, and the history with its statistics."""
