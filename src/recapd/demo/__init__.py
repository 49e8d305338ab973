"""The demo workspace of `recapd demo`: bundled IRC logs (data/, CC-BY-4.0) and the seeding."""
