"""Storage: SQLAlchemy Core tables, Alembic migrations and one store per aggregate, on SQLite and
PostgreSQL through one code path."""
