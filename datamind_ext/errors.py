"""Errors a user can fix. The CLI prints them as one line, never as a traceback."""


class UserError(Exception):
    """A mistake in the user's input (a missing file, a bad config key, a bad value).

    The message must say what is wrong and how to fix it, in one line.
    """
