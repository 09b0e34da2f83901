"""Custom Rasa NLU graph components of the clinic assistant (listed in config.yml)."""
