"""Erasure on request: each request knows its conversation; withdrawals for the booking system.

Revision ID: 0004_erasure
Revises: 0003_availability
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_erasure"
down_revision = "0003_availability"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the request's conversation id and the withdrawal notices of erased requests.

    Requests stored before have no conversation id: erasing by email, phone or reference
    still finds them, and the conversations that mention them.
    """
    op.add_column("booking_requests", sa.Column("conversation_id", sa.String(255)))
    op.create_index("ix_booking_requests_conversation_id", "booking_requests", ["conversation_id"])
    op.create_table(
        "booking_withdrawals",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("reference", sa.String(16), nullable=False, unique=True),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.Column("delivery_attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_delivery_error", sa.String(200)),
    )


def downgrade() -> None:
    """Drop the withdrawal notices and the conversation id (the requests stay)."""
    op.drop_table("booking_withdrawals")
    op.drop_index("ix_booking_requests_conversation_id", "booking_requests")
    with op.batch_alter_table("booking_requests") as batch:
        batch.drop_column("conversation_id")
