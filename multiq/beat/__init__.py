"""Beat: periodic tasks, one sender at a time, state in Redis."""
