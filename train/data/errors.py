class DataError(Exception):
    """Bad or missing data; the CLI prints it as one line and exits non-zero."""
