"""User-facing errors: the CLI prints the message on one line and exits with code 2."""


class BenchError(Exception):
    """A problem with the user's input (config, image, weights, submission) that they can fix.

    The message must say what is wrong and name the fix.
    """

    exit_code = 2
