"""The ``queryall`` client commands: submit a query, follow it with a progress bar, get the result."""
