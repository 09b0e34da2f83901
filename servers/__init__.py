"""Entry points of the two servers (Rasa and actions), configured from the environment."""
