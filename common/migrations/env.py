"""Alembic's environment: runs the migrations on the connection `upgrade()` hands over."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only common.migrations.upgrade() runs these
    raise SystemExit("Run the migrations with common.migrations.upgrade(url), which passes the connection.")
# SQLite cannot alter a column in place: Alembic's batch mode copies the table when needed.
context.configure(
    connection=connection,
    target_metadata=None,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
