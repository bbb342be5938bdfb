"""Generation and embedding backends and the scheduler that runs them off the event loop."""
