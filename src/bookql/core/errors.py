"""Errors that stop the program before it serves anything.

The command line prints their message as one line (no traceback) and exits non-zero.
"""


class StartupError(Exception):
    """Something outside the code is wrong; the message names it and says what to do."""


class ConfigError(StartupError):
    """A setting is missing, malformed or unsafe."""


class DatabaseUnavailableError(StartupError):
    """The configured database cannot be reached."""
