"""Running the tools as a user does (a subprocess, a config file), and training in-process with its exact losses."""
import contextlib
import io
import logging
import os
import runpy
import subprocess
import sys

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# One thread per process: the tests' ops (32 px images) are too small to gain from a second thread,
# and a team of OpenMP threads waits for cores whenever the tests' processes share them.
ONE_THREAD_ENV = dict(os.environ, OMP_NUM_THREADS="1")
# Generous: the machine may be shared; a run that hangs still fails the test.
TIMEOUT = 600


def files_under(root):
    """{path relative to ``root``: bytes} of every file under ``root``, to compare a folder before and after."""
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, root)] = handle.read()
    return found


def write_config(cfg, path):
    """``cfg`` as a YAML file a tool can take with --config_file."""
    path = str(path)
    with open(path, "w") as handle:
        handle.write(cfg.dump())
    return path


def tool_command(tool, *args):
    return [sys.executable, os.path.join(REPO, "tools", tool), *map(str, args)]


def start_tool(tool, *args, **popen_options):
    popen_options.setdefault("env", ONE_THREAD_ENV)
    popen_options.setdefault("stdout", subprocess.PIPE)
    popen_options.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(tool_command(tool, *args), cwd=REPO, text=True, **popen_options)


def finish(process):
    """(returncode, stdout, stderr) of a process started by start_tool."""
    out, err = process.communicate(timeout=TIMEOUT)
    return process.returncode, out, err


def run_tool(tool, *args):
    return finish(start_tool(tool, *args))


def assert_user_error(result, *fragments):
    """Exit code 2 and a one-line ``error: ...`` naming every fragment, no traceback."""
    code, out, err = result
    assert code == 2, (code, out[-2000:], err[-2000:])
    assert "Traceback" not in out + err, err[-3000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def one_thread():
    """torch on one thread in this process for the block (see ONE_THREAD_ENV)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def train_and_read_losses(cfg):
    """do_train(cfg) in this process, on one thread; the exact per-iteration losses it logs at DEBUG
    (SOLVER.LOG_EXACT_LOSSES is switched on).

    A handler on "jifd.train" itself, so that it works whatever logging setup ran before.
    """
    from engine.trainer import do_train

    cfg = cfg.clone()
    cfg.defrost()
    cfg.SOLVER.LOG_EXACT_LOSSES = True
    cfg.freeze()

    logger = logging.getLogger("jifd.train")
    handler, level = _Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with one_thread():
            metrics = do_train(cfg)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return [line for line in handler.lines if line.startswith("iteration ")], metrics


def _fresh_process_logging():
    """The logging a new interpreter starts with: no tool's handlers (they write to one call's streams and
    files), and "jifd" holding only utils.logger's early-records handler, empty, so that a tool run replays
    its own config warnings, and only those, into its log as a first run does."""
    from utils import logger as jifd_logging

    for name in ("jifd", "py.warnings"):
        for handler in list(logging.getLogger(name).handlers):
            logging.getLogger(name).removeHandler(handler)
            handler.close()
    logging.captureWarnings(False)
    root = logging.getLogger("jifd")
    root.setLevel(logging.NOTSET)
    root.propagate = True
    jifd_logging._early.records.clear()
    root.addHandler(jifd_logging._early)


def run_tool_in_process(tool, *args):
    """(exit code, stdout, stderr) of tools/<tool> run in this process, as ``run_tool`` gives them.

    For runs where a new interpreter (importing torch again costs seconds) adds nothing: the entry point,
    run_cli and its exit code are the same, and logging starts as in a new interpreter. stdout and stderr
    are strict UTF-8 streams, as a process's are under a UTF-8 locale. The tests that must see a real
    process (signals, locks, umask, torchrun, the interpreter's own exit) use run_tool.
    """
    out, err = (io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict") for _ in range(2))
    argv = sys.argv
    sys.argv = [tool, *map(str, args)]
    _fresh_process_logging()
    code = None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), one_thread():
            runpy.run_path(os.path.join(REPO, "tools", tool), run_name="__main__")
    except SystemExit as exited:
        code = exited.code
    finally:
        sys.argv = argv
        _fresh_process_logging()
    texts = []
    for stream in (out, err):
        stream.flush()
        texts.append(stream.buffer.getvalue().decode("utf-8"))
    return code, *texts
