"""The one exception type for mistakes a user can fix (bad data, bad files)."""


class UserError(Exception):
    """Raised with a message that names the file or key to fix.

    Entry points print the message alone, without a traceback.
    """
