"""Use cases: recaps, scheduled recaps, limits and permissions, over the store, the job server
and the outside world (chat sources, agents)."""
