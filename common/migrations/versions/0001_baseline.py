"""Baseline: booking_requests exactly as the code before migrations created it.

A database made by that code has this table and no alembic_version table; upgrade() stamps
it with this revision instead of running it, so its rows stay.

Revision ID: 0001_baseline
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create booking_requests."""
    op.create_table(
        "booking_requests",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("reference", sa.String(16), nullable=False, unique=True),
        sa.Column("dedupe_key", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("contact", sa.Text, nullable=False),
        sa.Column("contact_type", sa.String(8), nullable=False),
        sa.Column("preferred_date", sa.Date, nullable=False),
        sa.Column("time_of_day", sa.String(16), nullable=False),
        sa.Column("scar", sa.Text, nullable=False),
        sa.Column("consent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.Column("delivery_attempts", sa.Integer, nullable=False),
        sa.Column("last_delivery_error", sa.String(200)),
    )


def downgrade() -> None:
    """Drop booking_requests."""
    op.drop_table("booking_requests")
