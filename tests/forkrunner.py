"""Run ``pyrovae`` command lines as separate processes without paying Python's start-up each time.

A server process imports :mod:`pyrovae.cli` once; for every command line it forks a child that
runs ``main(argv)`` with its own stdout and stderr, and reports the child's exit code and output.
Each command is a real process, so its exit code, its stderr (warnings and tracebacks included)
and the files it leaves are what ``python -m pyrovae`` would give, at a fraction of the cost:
importing torch and pyro takes about 2 s, most bad-input commands a tenth of that.
The server never runs torch code itself, so forking it is safe.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Sequence

_SERVER = r"""
import json, os, sys, tempfile, traceback
from pyrovae.cli import build_parser, main
build_parser()  # imports every command's modules (torch, Pyro) once, before the forks

def child(argv, cwd, out, err):
    os.chdir(cwd)
    os.dup2(os.open(out, os.O_WRONLY), 1)
    os.dup2(os.open(err, os.O_WRONLY), 2)
    sys.stdout, sys.stderr = open(1, "w"), open(2, "w")
    try:
        code = main(argv)
    except SystemExit as e:  # argparse, as the interpreter would handle it
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)

for line in sys.stdin:
    request = json.loads(line)
    with tempfile.NamedTemporaryFile() as out, tempfile.NamedTemporaryFile() as err:
        pid = os.fork()
        if pid == 0:
            child(request["argv"], request["cwd"], out.name, err.name)
        _, status = os.waitpid(pid, 0)
        reply = {"returncode": os.waitstatus_to_exitcode(status),
                 "stdout": open(out.name).read(), "stderr": open(err.name).read()}
    print(json.dumps(reply), flush=True)
"""


class ForkRunner:
    """``run(argv, cwd) -> subprocess.CompletedProcess`` through one pre-imported server process."""

    def __init__(self) -> None:
        self._server = subprocess.Popen([sys.executable, "-c", _SERVER], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)

    def run(self, argv: Sequence[str], cwd: str) -> subprocess.CompletedProcess:
        self._server.stdin.write(json.dumps({"argv": list(map(str, argv)), "cwd": str(cwd)}) + "\n")
        self._server.stdin.flush()
        reply = json.loads(self._server.stdout.readline())
        return subprocess.CompletedProcess(argv, reply["returncode"], reply["stdout"], reply["stderr"])

    def close(self) -> None:
        self._server.stdin.close()
        self._server.wait(timeout=30)
