"""The staff console: booking status, staff accounts, sign-in attempts, audit log, review decisions.

Revision ID: 0002_staff_console
Revises: 0001_baseline
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_staff_console"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the status columns and the console's tables."""
    # Existing requests become "new": staff have not marked them yet.
    op.add_column(
        "booking_requests",
        sa.Column("status", sa.String(16), nullable=False, server_default="new"),
    )
    op.add_column("booking_requests", sa.Column("status_note", sa.Text))
    op.add_column("booking_requests", sa.Column("status_changed_at", sa.DateTime(timezone=True)))
    op.add_column("booking_requests", sa.Column("status_changed_by", sa.String(64)))
    op.create_index("ix_booking_requests_status", "booking_requests", ["status"])
    op.create_index("ix_booking_requests_created_at", "booking_requests", ["created_at"])
    op.create_table(
        "staff_users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        # Raised on sign-out and password change: every cookie issued before stops working.
        sa.Column("session_version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_sign_in_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
        # Keyed hashes, not the typed name or the address: counted, never read back.
        sa.Column("name_key", sa.String(64), nullable=False, index=True),
        sa.Column("address_key", sa.String(64), nullable=False, index=True),
        sa.Column("succeeded", sa.Boolean, nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("staff_name", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(100), nullable=False, server_default=""),
        sa.Column("detail", sa.String(200), nullable=False, server_default=""),
    )
    op.create_table(
        "review_decisions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("text_key", sa.String(64), nullable=False, unique=True),
        sa.Column("text", sa.Text, nullable=False),  # masked: no email or phone number
        sa.Column("decision", sa.String(16), nullable=False, index=True),
        sa.Column("intent", sa.String(100)),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    """Drop the console's tables and the status columns (the requests stay)."""
    for table in ("review_decisions", "audit_log", "login_attempts", "staff_users"):
        op.drop_table(table)
    op.drop_index("ix_booking_requests_created_at", "booking_requests")
    op.drop_index("ix_booking_requests_status", "booking_requests")
    with op.batch_alter_table("booking_requests") as batch:
        for column in ("status_changed_by", "status_changed_at", "status_note", "status"):
            batch.drop_column(column)
