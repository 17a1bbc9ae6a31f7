"""The configuration mistake a user can fix."""


class ConfigError(ValueError):
    """A configuration mistake, with a message meant for the user."""
