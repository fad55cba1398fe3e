"""The two kinds of failure the CLI turns into exit codes: bad input (2) and usage (2)."""


class BadInput(Exception):
    """The input file, its external data, or a command-line value cannot be used.

    The message is one line that names the problem and, where there is one, the fix.
    """
