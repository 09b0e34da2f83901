"""The staff console: a browser workspace for bookings, unanswered questions and the week's numbers.

Flask (server-rendered Jinja2 pages, no JavaScript needed), Flask-WTF for CSRF protection
on every form, Flask-Login over Flask's signed session cookie, argon2 passwords, waitress
as the server (staff/console/server.py). What staff can do lives in staff/service/, shared
with the staff commands; this package only turns it into pages.
"""
