"""Consultation requests: the booking form, its validators, storage and delivery."""
