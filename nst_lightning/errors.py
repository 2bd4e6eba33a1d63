"""The one exception type for mistakes a user can fix.

The CLI turns it into a single line on stderr and exit code 2 (no traceback), so every message
says what is wrong *and* which option or file to change.
"""


class UserError(Exception):
    """A problem with the user's input or options, with the fix in the message."""
