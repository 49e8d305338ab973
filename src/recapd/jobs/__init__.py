"""The job server: leader election, schedulers and workers on top of the store."""
