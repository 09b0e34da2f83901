"""Chat channels (REST, socket.io) with input checks; see credentials.yml."""
