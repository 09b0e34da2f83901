"""The staff console in the browser (issue 14): bookings, unanswered questions, the week's numbers."""
