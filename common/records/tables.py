"""Every table of the project's database, as the migrations (common/migrations/) make them.

One home for the table definitions the action server, the Rasa servers' channels, the staff
console and the staff commands share: a column is added by a migration and here, nowhere
else (tests/unit/test_migrations.py compares the two). The modules beside this one hold what
is done with the rows: bookings.py (consultation requests and messages for the team),
delivery.py (sending them to the clinic's booking system), live_chat.py (the queue for a
person), notifications.py (e-mails to staff), conversations.py (Rasa's stored conversations
and the inbox decisions made on them). The console's own tables (staff accounts, sign-in
attempts, the audit log, training runs and published models) are here too: one metadata,
so a foreign key between any two tables resolves.

Rasa's own `events` table (made by Rasa's SQL tracker store, never by the migrations) is on
`rasa_metadata`, with only the columns the project reads.
"""

from __future__ import annotations

import sqlalchemy as sa

# The tables the migrations make.
metadata = sa.MetaData()
# Rasa's tables the project reads (Rasa makes them; the migrations never touch them).
rasa_metadata = sa.MetaData()

# --- Consultation requests and messages for the team (bookings.py, delivery.py) ---
booking_requests = sa.Table(
    "booking_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("reference", sa.String(16), nullable=False, unique=True),
    sa.Column("dedupe_key", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("contact", sa.Text, nullable=False),
    sa.Column("contact_type", sa.String(8), nullable=False),
    # When the visitor is free for the call back (actions/booking/availability.py): the earliest
    # day that suits, the last day of a range (empty: open-ended), the weekdays that suit
    # (comma-separated; empty: any open day), the time of day, "flexible", and their own words.
    sa.Column("preferred_date", sa.Date, nullable=False),
    sa.Column("latest_date", sa.Date),
    sa.Column("weekdays", sa.String(80), nullable=False, default=""),
    sa.Column("time_of_day", sa.String(80), nullable=False),  # as meant: "after 2pm" (0010_reception)
    sa.Column("flexible", sa.Boolean, nullable=False, default=False),
    sa.Column("availability", sa.Text, nullable=False, default=""),
    sa.Column("scar", sa.Text, nullable=False, default=""),
    sa.Column("consent_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
    sa.Column("delivery_attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_delivery_error", sa.String(200)),  # status or error type only, never data
    # Staff's follow-up in the console (common/migrations/versions/0002_staff_console.py).
    sa.Column("status", sa.String(16), nullable=False, default="new", server_default="new", index=True),
    sa.Column("status_note", sa.Text),
    sa.Column("status_changed_at", sa.DateTime(timezone=True)),
    sa.Column("status_changed_by", sa.String(64)),
    # The conversation (Rasa's sender_id) that made the request: erasing it erases this too
    # (common/migrations/versions/0004_erasure.py).
    sa.Column("conversation_id", sa.String(255), index=True),
    # A consultation request, or a callback ("leave a message" when nobody could chat live) with
    # the visitor's question (common/migrations/versions/0006_live_chat.py).
    sa.Column("kind", sa.String(16), nullable=False, default="consultation", server_default="consultation"),
    sa.Column("question", sa.Text, nullable=False, default="", server_default=""),
    # The days as read back to the visitor and confirmed, alternatives and their times included
    # ("weekdays between ... after 2pm; or Saturday 12 December 2026, morning"; 0010_reception).
    sa.Column("understood", sa.Text, nullable=False, default="", server_default=""),
)
# Staff's follow-up of a request, entry by entry: who, when, a status change and/or a note
# (common/migrations/versions/0010_reception.py). Erasing or purging a request deletes its entries.
booking_history = sa.Table(
    "booking_history",
    metadata,
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
# Erased requests the booking system may hold: it is told to delete them (reference only).
booking_withdrawals = sa.Table(
    "booking_withdrawals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("reference", sa.String(16), nullable=False, unique=True),
    sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
    sa.Column("delivery_attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_delivery_error", sa.String(200)),
)


# One row per request made, by a keyed hash of its contact and day (never the contact itself):
# the daily limit per contact counts these, so erasing a request does not reset it
# (common/migrations/versions/0008_privacy.py). Rows older than CONTACT_COUNT_DAYS go.
contact_requests = sa.Table(
    "contact_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("contact_key", sa.String(64), nullable=False, index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# --- Live chat with the clinic's staff (live_chat.py) ---
live_chats = sa.Table(
    "live_chats",
    metadata,
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
staff_presence = sa.Table(
    "staff_presence",
    metadata,
    sa.Column("staff_id", sa.Integer, primary_key=True),
    sa.Column("staff_name", sa.String(64), nullable=False),
    sa.Column("available", sa.Boolean, nullable=False, default=False),
    sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
)

# --- Staff accounts and the console's sign-in records (staff/service/accounts.py) ---
staff_users = sa.Table(
    "staff_users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, default=True),
    sa.Column("session_version", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_sign_in_at", sa.DateTime(timezone=True)),
    # The second factor (migration 0009_two_factor; staff/service/second_factor.py).
    sa.Column("totp_secret", sa.String(255)),
    sa.Column("totp_pending_secret", sa.String(255)),
    sa.Column("totp_enabled_at", sa.DateTime(timezone=True)),
    sa.Column("totp_last_step", sa.BigInteger),
    # Where e-mail notifications go (migration 0011_notifications; set by an admin).
    sa.Column("email", sa.String(254)),
)
recovery_codes = sa.Table(
    "staff_recovery_codes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("staff_id", sa.Integer, sa.ForeignKey("staff_users.id"), nullable=False, index=True),
    sa.Column("code_hash", sa.String(255), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("used_at", sa.DateTime(timezone=True)),
)
login_attempts = sa.Table(
    "login_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("name_key", sa.String(64), nullable=False, index=True),
    sa.Column("address_key", sa.String(64), nullable=False, index=True),
    sa.Column("succeeded", sa.Boolean, nullable=False),
)
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("staff_name", sa.String(64), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(100), nullable=False, default=""),
    sa.Column("detail", sa.String(200), nullable=False, default=""),
)

# --- E-mail notifications to staff (notifications.py) ---
notification_choices = sa.Table(
    "notification_choices",
    metadata,
    sa.Column("staff_id", sa.Integer, sa.ForeignKey("staff_users.id"), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
)
notification_settings = sa.Table(
    "notification_settings",
    metadata,
    sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("sender", sa.String(254)),
    sa.Column("with_details", sa.Boolean, nullable=False, default=False),
    sa.Column("changed_at", sa.DateTime(timezone=True)),
    sa.Column("changed_by", sa.String(64)),
)
notification_outbox = sa.Table(
    "notification_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("dedupe_key", sa.String(64), nullable=False, unique=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("reference", sa.String(40), nullable=False),
    sa.Column("path", sa.String(200), nullable=False),
    sa.Column("details", sa.Text),
    sa.Column("conversation_id", sa.String(255), index=True),
    sa.Column("staff_id", sa.Integer, nullable=False),
    sa.Column("address", sa.String(254), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("claimed_until", sa.DateTime(timezone=True)),
    sa.Column("last_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("last_failed_at", sa.DateTime(timezone=True)),
    sa.Column("last_error", sa.String(300)),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
    # The sender's question: which e-mails are due (0011_notifications).
    sa.Index("notification_outbox_due", "status", "next_attempt_at"),
)

# --- Decisions of the Unanswered questions inbox (staff/service/inbox.py, conversations.py) ---
review_decisions = sa.Table(
    "review_decisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("text_key", sa.String(64), nullable=False, unique=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("decision", sa.String(16), nullable=False, index=True),
    sa.Column("intent", sa.String(100)),
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("decided_by", sa.String(64), nullable=False),
)
# Which conversations each decision of the Unanswered questions inbox was made on (migration
# 0008_privacy), and the decisions themselves (`review_decisions` above):
# erasing a conversation takes its decisions with it.
review_sources = sa.Table(
    "review_sources",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("text_key", sa.String(64), nullable=False, index=True),
    sa.Column("conversation_id", sa.String(255), nullable=False, index=True),
)

# --- Training runs and published models (staff/service/models.py) ---
training_runs = sa.Table(
    "training_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("requested_by", sa.String(64), nullable=False),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("heartbeat_at", sa.DateTime(timezone=True)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("stage", sa.String(200), nullable=False, default=""),
    sa.Column("progress", sa.Integer, nullable=False, default=0),
    sa.Column("active", sa.Integer, unique=True),  # 1 while queued or running: one at a time
    sa.Column("pid", sa.Integer),
    sa.Column("inputs_digest", sa.String(64)),
    sa.Column("archive", sa.String(500)),
    sa.Column("sha256", sa.String(64)),
    sa.Column("train_seconds", sa.Float),
    sa.Column("report", sa.Text),
    sa.Column("publishable", sa.Boolean, nullable=False, default=False),
)
published_models = sa.Table(
    "published_models",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("training_run_id", sa.Integer, sa.ForeignKey("training_runs.id"), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("archive", sa.String(500), nullable=False),
    sa.Column("published_by", sa.String(64), nullable=False),
    sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("live_since", sa.DateTime(timezone=True), nullable=False),
    sa.Column("withdrawn_by", sa.String(64)),
    sa.Column("withdrawn_at", sa.DateTime(timezone=True)),
)
# The assistant as installed (one row, slot 1): what visitors get while nothing is published.
installed_model = sa.Table(
    "installed_model",
    metadata,
    sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("archive", sa.String(500), nullable=False),
    sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)

# --- Rasa's stored conversations (conversations.py) ---
# The columns of Rasa 3.6's SQLTrackerStore table that the project reads.
events = sa.Table(
    "events",
    rasa_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sender_id", sa.String(255)),
    sa.Column("type_name", sa.String(255)),
    sa.Column("timestamp", sa.Float),
    sa.Column("intent_name", sa.String(255)),
    sa.Column("action_name", sa.String(255)),
    sa.Column("data", sa.Text),
)
