"""torchrun, as ``ssp`` launches it: ``python -m ssp.launch.torchrun [torchrun args] -m ssp.launch.worker ...``.

The same launcher as ``python -m torch.distributed.run`` (its ``main``, its arguments), with one
difference: a stage that stops cleanly (a worker exits with ``CLEAN_STOP``, having written its one-line
``ssp: error:`` message to ``$SSP_ERROR_FILE``: a budget stop, bad user data) ends torchrun quietly
with that code. Plain torchrun prints its ``ChildFailedError`` traceback (~30 lines) after the clean
message, and the launcher then printed the message again. A worker that crashes (any other exit code,
a signal) still gets torchrun's failure summary, on stderr, as before.
"""

from __future__ import annotations

import logging
import os
import sys

# What launch.worker exits with after an SSPError (the CLI's own code for them).
CLEAN_STOP = 2
ERROR_FILE_ENV = "SSP_ERROR_FILE"


def record_error(message: str) -> bool:
    """Write a worker's clean-stop message for its launcher; the first worker's message wins.
    False when no launcher asked for one (torchrun by hand): the worker prints it itself."""
    path = os.environ.get(ERROR_FILE_ENV)
    if not path:
        return False
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return True
    with os.fdopen(fd, "w") as f:
        f.write(message)
    return True


def main(argv: list[str] | None = None) -> int:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    try:
        run(parse_args(sys.argv[1:] if argv is None else argv))
    except ChildFailedError as err:
        _, first = err.get_first_failure()
        if first.exitcode == CLEAN_STOP and os.environ.get(ERROR_FILE_ENV):
            return CLEAN_STOP
        print(err.format_msg(), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    # The agent logs each worker's exit at WARNING/ERROR; after a clean stop that is noise, and after
    # a crash the summary above says the same.
    logging.getLogger("torch.distributed.elastic.multiprocessing.api").setLevel(logging.CRITICAL)
    sys.exit(main())
