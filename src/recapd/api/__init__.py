"""The REST API (FastAPI) under /api/v4: recaps, scheduled recaps, system."""
