"""What staff can do, shared by the console (staff/console/) and the staff commands.

Each module is one area of work: accounts (users, roles, sign-in, audit log), bookings
(consultation requests), inbox (unanswered questions), numbers (the week's figures) and
transcripts (conversations). None of them knows about HTTP or the command line.
"""
