"""Progress output: a live bar on a terminal, plain lines (no carriage returns) in a log (issue 20)."""

import io

from tqdm.auto import tqdm

from pyrovae.progress import LineProgress, progress_bar


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_plain_lines_and_a_terminal_gets_a_bar():
    log = io.StringIO()
    with progress_bar(4, "train", True, file=log) as bar:
        assert isinstance(bar, LineProgress)
        bar.interval = 0.0  # a line at every update (the default waits 10 s between lines)
        for i in range(4):
            bar.set_postfix(epoch=1, elbo=f"{-100.0 - i:.2f}")
            bar.update(1)
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert lines[0] == "train: 1/4 steps (25%), epoch=1, elbo=-100.00"
    assert lines[-1] == "train: 4/4 steps (100%), epoch=1, elbo=-103.00" and len(lines) == 4
    assert isinstance(progress_bar(4, "train", True, file=Terminal()), tqdm)


def test_no_output_when_disabled():
    log = io.StringIO()
    with progress_bar(3, "train", False, file=log) as bar:
        bar.update(3)
    assert log.getvalue() == ""


# A real `pyrovae train` into a log: tests/test_cli.py::test_defaults_flags_and_progress_of_a_train_process.
