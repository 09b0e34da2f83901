"""When the visitor is free: a range's last day, the weekdays that suit, flexible, their own words.

Revision ID: 0003_availability
Revises: 0002_staff_console
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_availability"
down_revision = "0002_staff_console"
branch_labels = None
depends_on = None

COLUMNS = ("availability", "flexible", "weekdays", "latest_date")


def upgrade() -> None:
    """Add the availability columns; requests stored before keep their day and time only."""
    op.add_column("booking_requests", sa.Column("latest_date", sa.Date))
    op.add_column("booking_requests", sa.Column("weekdays", sa.String(80), nullable=False, server_default=""))
    op.add_column(
        "booking_requests",
        sa.Column("flexible", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.add_column("booking_requests", sa.Column("availability", sa.Text, nullable=False, server_default=""))


def downgrade() -> None:
    """Drop the availability columns (the requests and their preferred day stay)."""
    with op.batch_alter_table("booking_requests") as batch:
        for column in COLUMNS:
            batch.drop_column(column)
