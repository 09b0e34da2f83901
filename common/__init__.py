"""What every part of the project shares: paths, settings, the clinic's details, names.

The Rasa-facing packages (actions, components, channels), the servers, the staff
commands and the developer tools all import from here; nothing here imports them.
"""
