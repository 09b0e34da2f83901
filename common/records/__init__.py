"""The records every process shares, in the project's SQL database, and what is done with them.

The action server, the Rasa servers' channels, the staff console and the staff commands all
use these, so they live here rather than in any one of them:

* tables.py: every table, as the migrations (common/migrations/) make them;
* bookings.py: consultation requests and messages for the team (the booking form saves them,
  staff follow them up); delivery.py sends them to the clinic's booking system;
* live_chat.py: the queue of visitors asking for a person, and who is available;
* notifications.py: the e-mails to staff waiting in the outbox, and what each one chose;
* conversations.py: Rasa's stored conversations, and erasing the inbox decisions made on them.
"""
