"""What clinic staff use.

service/ holds the work (checks, training, review, bookings, accounts...), console/ the web
console over it, and commands/ the command-line entry points over it.
"""
