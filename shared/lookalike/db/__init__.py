"""Storage: SQLAlchemy 2 models, the session scope, and repository functions (every query lives there)."""
