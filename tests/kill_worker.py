"""``pyrovae train`` that says when it saves a checkpoint and cannot finish on its own (tests only).

    python tests/kill_worker.py GATE TRAIN-ARGUMENTS...
    python tests/kill_worker.py GATE@FOLDER COMPARE-ARGUMENTS...

The real command line (:func:`pyrovae.cli.main`), with one observation added: each time
``checkpoint.pt`` is renamed into place (every checkpoint is written atomically, by
``os.replace``), the process prints ``saved`` on stdout. After its GATE-th save it waits for a line
on stdin, which the kill test never sends. So the test waits for events instead of seconds: the
first ``saved`` line means the process is past its set-up and has checkpointed progress of its
own, and the gate means that however slowly a loaded machine schedules the test, the run is still
alive (running or waiting) when the kill comes. ``GATE@FOLDER`` counts only the saves into run
folders named FOLDER (a comparison writes one per run), so a test can stop a grid inside a given run.
"""

import os
import sys

from pyrovae.cli import main


def _announce_checkpoints(gate: str) -> None:
    count, _, folder = gate.partition("@")
    replace, saves = os.replace, [0]

    def announcing(src, dst, *args, **kwargs):
        replace(src, dst, *args, **kwargs)
        path = os.fspath(dst)
        if os.path.basename(path) == "checkpoint.pt":
            saves[0] += not folder or os.path.basename(os.path.dirname(path)) == folder
            print("saved", flush=True)
            if saves[0] >= int(count):
                sys.stdin.readline()  # the gate: blocks until the test kills this process

    os.replace = announcing


if __name__ == "__main__":
    _announce_checkpoints(sys.argv[1])
    sys.exit(main(sys.argv[2:]))
