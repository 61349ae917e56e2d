"""``pyrovae train`` that says when it saves a checkpoint and cannot finish on its own (tests only).

    python tests/kill_worker.py GATE TRAIN-ARGUMENTS...

The real command line (:func:`pyrovae.cli.main`), with one observation added: each time
``checkpoint.pt`` is renamed into place (every checkpoint is written atomically, by
``os.replace``), the process prints ``saved`` on stdout. After its GATE-th save it waits for a line
on stdin, which the kill test never sends. So the test waits for events instead of seconds: the
first ``saved`` line means the process is past its set-up and has checkpointed progress of its
own, and the gate means that however slowly a loaded machine schedules the test, the run is still
alive (running or waiting) when the kill comes.
"""

import os
import sys

from pyrovae.cli import main


def _announce_checkpoints(gate: int) -> None:
    replace, saves = os.replace, [0]

    def announcing(src, dst, *args, **kwargs):
        replace(src, dst, *args, **kwargs)
        if os.path.basename(os.fspath(dst)) == "checkpoint.pt":
            saves[0] += 1
            print("saved", flush=True)
            if saves[0] >= gate:
                sys.stdin.readline()  # the gate: blocks until the test kills this process

    os.replace = announcing


if __name__ == "__main__":
    _announce_checkpoints(int(sys.argv[1]))
    sys.exit(main(sys.argv[2:]))
