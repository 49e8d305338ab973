"""Turning one channel's window of posts into a RecapChannel: window choice, budgets, chunking
on thread boundaries, map-reduce over an agent, citation checks."""
