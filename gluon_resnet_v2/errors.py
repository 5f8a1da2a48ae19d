"""User-facing errors: the CLI prints their one-line message and exits with their code."""


class UserError(ValueError):
    """A problem with the user's input; the message names the problem and the fix (exit 2)."""
    exit_code = 2


class TrainingDiverged(RuntimeError):
    """The loss or the weights became NaN/inf; the last good checkpoint is kept (exit 3)."""
    exit_code = 3


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGINT) during training; the message says what is kept and how to resume
    (exit 130)."""
    exit_code = 130
