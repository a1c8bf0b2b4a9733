"""The errors a user can cause, each reported as one line and exit status 2."""


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit status 2."""


class CheckpointMismatch(UsageError):
    """A readable checkpoint made for something else: another game, another learner, another network version."""
