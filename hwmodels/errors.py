"""User-facing errors.

Anything wrong with a user's input raises ``CodesignError`` with one line saying what was
wrong, where, and how to fix it.  The CLI prints that line and exits with code 2; library
users catch the exception.
"""


class CodesignError(Exception):
    """Bad input: a one-line, actionable message.  The CLI maps it to exit code 2."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
