"""Reception: a status history with notes per request, what was understood of "when", longer times.

Revision ID: 0010_reception
Revises: 0009_two_factor
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0010_reception"
down_revision = "0009_two_factor"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add booking_history (who, when, status change and/or note) seeded with each request's note.

    A request's follow-up so far (its status, note, who and when) becomes its first history
    entry, so no note is lost. `understood` keeps the days as read back to the visitor
    (alternatives included), and `time_of_day` grows to hold times as meant ("after 2pm or
    lunchtime").
    """
    with op.batch_alter_table("booking_requests") as batch:
        batch.add_column(sa.Column("understood", sa.Text, nullable=False, server_default=""))
        batch.alter_column("time_of_day", type_=sa.String(80), existing_type=sa.String(16))
    history = op.create_table(
        "booking_history",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "request_id",
            sa.Integer,
            sa.ForeignKey("booking_requests.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("staff_name", sa.String(64), nullable=False),
        sa.Column("status_from", sa.String(16)),
        sa.Column("status_to", sa.String(16)),
        sa.Column("note", sa.Text),
    )
    requests = sa.table(
        "booking_requests",
        sa.column("id", sa.Integer),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("status", sa.String),
        sa.column("status_note", sa.Text),
        sa.column("status_changed_at", sa.DateTime(timezone=True)),
        sa.column("status_changed_by", sa.String),
    )
    db = op.get_bind()
    followed_up = db.execute(
        sa.select(requests).where(
            sa.or_(requests.c.status_note.is_not(None), requests.c.status_changed_at.is_not(None))
        )
    ).mappings()
    rows = [
        {
            "request_id": row["id"],
            "at": row["status_changed_at"] or row["created_at"] or datetime.now(timezone.utc),
            "staff_name": row["status_changed_by"] or "",
            "status_from": None,
            "status_to": row["status"] if row["status_changed_at"] else None,
            "note": row["status_note"],
        }
        for row in followed_up
    ]
    if rows:
        op.bulk_insert(history, rows)


def downgrade() -> None:
    """Drop the history (each request's last note stays in status_note) and the new column."""
    op.drop_table("booking_history")
    db = op.get_bind()
    db.execute(sa.text("UPDATE booking_requests SET time_of_day = substr(time_of_day, 1, 16)"))
    with op.batch_alter_table("booking_requests") as batch:
        batch.alter_column("time_of_day", type_=sa.String(16), existing_type=sa.String(80))
        batch.drop_column("understood")
