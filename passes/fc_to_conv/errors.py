"""The failure the CLI turns into exit code 2: a bad input file, output path or command-line value."""


class BadInput(Exception):
    """The input file, its external data, or a command-line value cannot be used.

    The message is one line that names the problem and, where there is one, the fix.
    """
