"""The parsers' tie to their run: the forkserver and its workers end when the run does, even when it is killed."""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import sys
import threading

# The run's pid, set by the run before it starts the parsers' server (which inherits it).
RUN_PID = "PIPELINE_PARSERS_RUN_PID"
# The server's pid, set by the server for the workers it forks.
SERVER_PID = "PIPELINE_PARSERS_SERVER_PID"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_POLL_S = 0.5  # where the kernel cannot tell of a process's end (no pidfd), how often to look


def mark_run() -> None:
    """Record this process as the run that the parsers' server about to start belongs to."""
    os.environ[RUN_PID] = str(os.getpid())


def _in_parsers_server() -> bool:
    return "multiprocessing.forkserver" in " ".join(getattr(sys, "orig_argv", ()))


def serve_for_run() -> None:
    """In the parsers' server, at its start (the first module it loads): end it as soon as its run
    ends; elsewhere, nothing.

    A killed run cannot stop its server, and the server's own check of its run (end of file on a
    pipe) never fires while workers live, as each holds the pipe's other end: so a thread waits
    on the run's pidfd and ends the server, whose workers then end too (`start_worker`)."""
    run = int(os.environ.get(RUN_PID, "0"))
    if not run or not _in_parsers_server():
        return
    os.environ[SERVER_PID] = str(os.getpid())
    try:
        watch = os.pidfd_open(run)
    except (AttributeError, OSError):  # no pidfd here (not Linux, an old kernel) or the run is gone
        watch = None
    if os.getppid() != run:  # the run died before the watch began
        os._exit(0)
    threading.Thread(target=_end_with, args=(run, watch), name="end-with-run", daemon=True).start()


def _end_with(run: int, watch: int | None) -> None:
    if watch is not None:
        select.select([watch], [], [])  # readable once the run has ended
    else:
        while os.getppid() == run:
            select.select([], [], [], _POLL_S)
    os._exit(0)


def start_worker() -> None:
    """A worker's start (the pool's initializer): the kernel ends it when its server ends, and it
    ends at once if the server is already gone."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if not run_alive():
        os._exit(0)


def run_alive() -> bool:
    """False in a worker whose server (so whose run) has ended: it must write nothing more, as a
    later run may be cleaning the staged layer. Always True in the run itself."""
    server = os.environ.get(SERVER_PID)
    return server is None or int(server) == os.getpid() or os.getppid() == int(server)


serve_for_run()
