"""One exception type for bad input, so CLIs can print a one-line message instead of a traceback."""


class DataError(ValueError):
    """Bad or inconsistent input data. The message names the file and what is wrong."""
