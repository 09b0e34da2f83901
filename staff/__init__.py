"""What clinic staff use: data checks, training, the review of conversations, bookings, the console."""
