"""User-facing errors.

Anything the user can fix (a bad path, a corrupt file, a wrong option) raises ``UserError``
with a message that names the file and the problem; the CLI prints it without a traceback.
"""


class UserError(Exception):
    """An error caused by the user's input, reported as one clear message."""
