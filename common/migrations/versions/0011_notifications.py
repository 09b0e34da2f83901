"""E-mail notifications: staff's addresses and choices, the clinic's settings, and the outbox.

Revision ID: 0011_notifications
Revises: 0010_reception
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_notifications"
down_revision = "0010_reception"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add each staff member's e-mail address, their choices, the settings row and the outbox.

    Nobody has an address yet, so nothing is sent until an admin sets addresses and staff
    choose what they want (common/records/notifications.py).
    """
    with op.batch_alter_table("staff_users") as batch:
        batch.add_column(sa.Column("email", sa.String(254)))  # set by an admin (audited)
    op.create_table(
        "notification_choices",
        sa.Column("staff_id", sa.Integer, sa.ForeignKey("staff_users.id"), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
    )
    op.create_table(
        "notification_settings",
        sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("sender", sa.String(254)),  # None: SMTP_FROM
        sa.Column("with_details", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("changed_at", sa.DateTime(timezone=True)),
        sa.Column("changed_by", sa.String(64)),
    )
    op.create_table(
        "notification_outbox",
        sa.Column("id", sa.Integer, primary_key=True),
        # one e-mail per kind, subject and recipient: enqueuing the same again adds nothing
        sa.Column("dedupe_key", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reference", sa.String(40), nullable=False),
        sa.Column("path", sa.String(200), nullable=False),
        sa.Column("details", sa.Text),  # personal details: only when the clinic turned them on
        sa.Column("conversation_id", sa.String(255), index=True),
        sa.Column("staff_id", sa.Integer, nullable=False),
        sa.Column("address", sa.String(254), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True)),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("last_failed_at", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.String(300)),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
    )
    op.create_index("notification_outbox_due", "notification_outbox", ["status", "next_attempt_at"])


def downgrade() -> None:
    """Drop the outbox, the settings and choices, and the staff's addresses."""
    op.drop_index("notification_outbox_due", "notification_outbox")
    op.drop_table("notification_outbox")
    op.drop_table("notification_settings")
    op.drop_table("notification_choices")
    with op.batch_alter_table("staff_users") as batch:
        batch.drop_column("email")
