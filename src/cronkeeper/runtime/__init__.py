"""Long-running asyncio loops (scheduler, workers, monitor, notifier, retention)."""
