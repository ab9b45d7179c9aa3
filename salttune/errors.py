"""The one exception type for mistakes a user can make (a file, a YAML field, a flag).

The CLI catches it, prints its message as one line and exits with code 2, with no traceback.
Programming errors use the ordinary exceptions and do show a traceback.
"""


class SalttuneError(Exception):
    """A user-caused error; the message names the thing that is wrong and how to fix it."""

    exit_code = 2
