"""One exception type for user mistakes, whatever their source: data files, configs, flags, model files.

`vislearn.common.cli.run_main` turns it into one line on stderr and exit code 2; anything else is a bug and keeps
its traceback.
"""


class UserError(ValueError):
    """A mistake the user can fix. The message names the file (or key, or flag) and what is wrong."""
