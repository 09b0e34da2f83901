"""The staff's command-line entry points (pyproject.toml [project.scripts], the Makefile's targets).

Each module only reads its arguments, calls staff/service/ and prints the outcome in plain words;
what the command does is in staff/service/, shared with the console.
"""
