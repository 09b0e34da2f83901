"""Live chat with staff: the queue and who holds each conversation, staff availability, callbacks.

Revision ID: 0006_live_chat
Revises: 0005_models
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_live_chat"
down_revision = "0005_models"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add live_chats and staff_presence; booking requests get a kind and the visitor's question.

    Requests stored before are consultation requests (kind 'consultation', no question).
    """
    op.create_table(
        "live_chats",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("conversation_id", sa.String(255), nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("staff_id", sa.Integer),
        sa.Column("staff_name", sa.String(64)),
        sa.Column("taken_at", sa.DateTime(timezone=True)),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("visitor_typing_at", sa.DateTime(timezone=True)),
        sa.Column("visitor_left_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "staff_presence",
        sa.Column("staff_id", sa.Integer, primary_key=True),
        sa.Column("staff_name", sa.String(64), nullable=False),
        sa.Column("available", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.add_column(
        "booking_requests",
        sa.Column("kind", sa.String(16), nullable=False, server_default="consultation"),
    )
    op.add_column("booking_requests", sa.Column("question", sa.Text, nullable=False, server_default=""))


def downgrade() -> None:
    """Drop the live chat tables and the requests' kind and question (the requests stay)."""
    with op.batch_alter_table("booking_requests") as batch:
        batch.drop_column("question")
        batch.drop_column("kind")
    op.drop_table("staff_presence")
    op.drop_table("live_chats")
