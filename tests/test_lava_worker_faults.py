"""The Lava worker's faults: a worker that dies (kill -9, out of memory) is seen within seconds,
its whole process group ends, the error is one line with its stderr, and the chunks it had
recorded are kept; the worker's Python warnings reach the console as one clean line each.

The fast tests use shell scripts in place of the Lava interpreter (the host side does not care
what the worker is); the slow ones kill a real Lava worker under the CLI."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from evospike.backends import get_backend
from evospike.backends.lava import environment as env
from evospike.backends.lava.runner import (
    PARTIAL_FORMAT,
    LavaWarning,
    StderrRelay,
    WorkerError,
    end_group,
    parse_warning,
    read_partial,
    run_worker,
    show_lava_warnings,
)
from evospike.errors import EvoSpikeError
from evospike.model_loading import load_model
from evospike.results import Results
from tests.conftest import ROOT


def _lava_missing() -> str | None:
    try:
        env.find_python()
    except EvoSpikeError as exc:
        return str(exc)
    return None


LAVA_MISSING = _lava_missing()
needs_lava = pytest.mark.skipif(LAVA_MISSING is not None,
                                reason=f"no Lava environment: {LAVA_MISSING}")


def _fake_python(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "fake-python"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def _group_gone(pgid: int, within_s: float = 10.0) -> bool:
    """True once no process (zombies included) is left in the group; orphans are reaped by
    init, which may take a moment."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


# --------------------------------------------------------------------------- warnings
def test_parse_warning_takes_category_and_message_only():
    line = ("/root/.cache/evospike/lava-venv/lib/python3.10/site-packages/lava/magma/"
            "compiler/compiler.py:152: DeprecationWarning:   the  Loihi2HwCfg is   deprecated\n")
    assert parse_warning(line) == ("DeprecationWarning", "the Loihi2HwCfg is deprecated")
    assert parse_warning("Traceback (most recent call last):") is None
    assert parse_warning('  File "/x/worker.py", line 3, in <module>') is None
    assert parse_warning("ValueError: 3: not a warning") is None


def test_relay_prints_each_warning_once_without_its_source_line(tmp_path):
    err = tmp_path / "stderr"
    err.write_text(
        "/venv/lib/python3.10/site-packages/lava/proc/lif/models.py:88: RuntimeWarning: "
        "overflow encountered in multiply\n"
        "  self.v[:] = self.v * (1 - self.dv) + self.u\n"
        "/venv/lib/python3.10/site-packages/lava/proc/lif/models.py:88: RuntimeWarning: "
        "overflow encountered in multiply\n"
        "  self.v[:] = self.v * (1 - self.dv) + self.u\n"
        "worker.py:9: UserWarning: second\n"
        "Traceback (most recent call last):\n"
        '  File "worker.py", line 3, in <module>\n'
        "ValueError: boom\n")
    got: list[tuple[str, str]] = []
    relay = StderrRelay(err, lambda category, message: got.append((category, message)))
    relay.finish()
    assert got == [("RuntimeWarning", "overflow encountered in multiply"),
                   ("UserWarning", "second")]
    tail = relay.tail()
    assert "\n" not in tail and "ValueError: boom" in tail and "Traceback" in tail
    assert "self.v[:]" not in tail and "overflow" not in tail


def test_relay_follows_a_growing_file(tmp_path):
    err = tmp_path / "stderr"
    err.write_text("a.py:1: FutureWarning: half")
    got: list[tuple[str, str]] = []
    relay = StderrRelay(err, lambda category, message: got.append((category, message)))
    relay.poll()
    assert got == []  # the line is not finished yet
    with open(err, "a") as f:
        f.write(" a line\nb.py:2: UserWarning: next\n")
    relay.poll()
    assert got == [("FutureWarning", "half a line"), ("UserWarning", "next")]


def test_lava_warning_shows_as_one_clean_line(capsys):
    others = []
    with warnings.catch_warnings():  # restores the display hook afterwards
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, category, *rest: others.append(str(message))
        show_lava_warnings()
        show_lava_warnings()  # idempotent: still one line per warning
        warnings.warn(LavaWarning("DeprecationWarning", "old API"), stacklevel=1)
        warnings.warn("something else", UserWarning, stacklevel=1)
    assert capsys.readouterr().err == "lava: DeprecationWarning: old API\n"
    assert others == ["something else"]  # any other warning is shown as before


def test_run_worker_relays_the_workers_warnings(tmp_path):
    out = tmp_path / "out.h5"
    python = _fake_python(tmp_path, (
        "echo '/venv/lava/magma/runtime.py:77: DeprecationWarning: the  old way' >&2\n"
        "echo '  warnings.warn(\"the old way\")' >&2\n"
        "echo '/venv/lava/magma/runtime.py:77: DeprecationWarning: the  old way' >&2\n"
        f"echo done > {out}\n"))
    with pytest.warns(LavaWarning) as caught:
        assert run_worker(python, tmp_path / "job.h5", out, timeout_s=30) is True
    relayed = [str(w.message) for w in caught if isinstance(w.message, LavaWarning)]
    assert relayed == ["lava: DeprecationWarning: the old way"]


# --------------------------------------------------------------------------- a dying worker
def test_dead_worker_is_seen_though_its_children_hold_the_pipe(tmp_path):
    """The worker kills itself (as kill -9 would) while a child it forked still holds its
    stdout: run_worker must not wait for the pipe to close, and must end the child."""
    pidfile = tmp_path / "child.pid"
    python = _fake_python(tmp_path, (
        "echo 'progress 500 9000'\n"
        "echo 'lava runtime: still fine' >&2\n"
        f"sleep 300 &\necho $! > {pidfile}\n"
        "sleep 0.5\nkill -9 $$\n"))
    outcome: dict = {}

    def target() -> None:
        try:
            run_worker(python, tmp_path / "job.h5", tmp_path / "out.h5", timeout_s=None)
        except WorkerError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(30)
    hung = thread.is_alive()
    child = int(pidfile.read_text())
    if hung:  # do not leave the child behind a failed test
        os.killpg(os.getpgid(child), signal.SIGKILL)
    assert not hung, "run_worker waited on the pipe of a dead worker"
    message = str(outcome["error"])
    assert "\n" not in message
    assert "killed by signal SIGKILL" in message and "after 500 of 9000 steps" in message
    assert "still fine" in message
    assert outcome["error"].returncode == -signal.SIGKILL
    assert _group_gone(child), "the worker's child survived its death"


def test_end_group_lets_the_resource_tracker_clean_up(tmp_path):
    """multiprocessing's resource tracker unlinks the shared memory of its dead clients
    when their end of its pipe closes; ending the group must give it that moment. Here a
    stand-in tracker (named like one) marks a file when its writer is gone."""
    mark = tmp_path / "cleaned"
    tracker = (f"import sys; sys.stdin.read(); open({str(mark)!r}, 'w').write('ok')"
               "  # multiprocessing.resource_tracker")
    proc = subprocess.Popen(["sh", "-c", f'sleep 300 | {sys.executable} -c "{tracker}" & '
                                         "echo started; wait"],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
    time.sleep(0.5)  # the tracker stand-in is reading
    end_group(proc.pid, tracker_grace_s=10.0)
    proc.wait(timeout=10)
    assert _group_gone(proc.pid)
    assert mark.exists() and mark.read_text() == "ok"


# --------------------------------------------------------------------------- partial results
def _write_recording(folder: Path, entries: list[dict], n_steps: int, chunk: int,
                     n_trials: int, components: int = 1) -> None:
    """A recording folder as the worker leaves it: per entry, ``spikes`` gives the (step,
    neuron) events of one population, written in chunk files up to ``files`` chunks."""
    folder.mkdir()
    manifest = {"format": PARTIAL_FORMAT, "n_steps": n_steps, "chunk": chunk,
                "n_trials": n_trials, "components_per_trial": components, "entries": []}
    for k, entry in enumerate(entries):
        sub = folder / f"e{k}"
        sub.mkdir()
        steps, neurons = entry["spikes"]
        for c in range(entry["files"]):
            keep = (steps >= c * chunk) & (steps < (c + 1) * chunk)
            np.save(sub / f"spk.{c}.npy", np.stack([steps[keep], neurons[keep]]))
        manifest["entries"].append({"trial": entry["trial"], "folder": f"e{k}",
                                    "done": entry["done"], "spikes": {"p": "spk"},
                                    "traces": {}})
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_read_partial_keeps_the_complete_chunks(tmp_path):
    out = tmp_path / "out.h5"
    steps = np.arange(0, 50, 3)
    neurons = steps % 4
    # trial 0 ran all 50 steps; trial 1 was killed after 30 (3 chunks on disk)
    _write_recording(Path(f"{out}.recorded"),
                     [{"trial": 0, "files": 5, "done": 50, "spikes": (steps, neurons)},
                      {"trial": 1, "files": 3, "done": 30, "spikes": (steps, neurons)}],
                     n_steps=50, chunk=10, n_trials=2)
    kept_steps, trials = read_partial(out)
    assert kept_steps == 30 and len(trials) == 2  # 2 x 30 trial-steps beat 1 x 50
    for spikes, _ in trials:
        s, n = spikes["p"]
        np.testing.assert_array_equal(s, steps[steps < 30])
        np.testing.assert_array_equal(n, neurons[steps < 30])


def test_read_partial_drops_a_trial_that_barely_started(tmp_path):
    out = tmp_path / "out.h5"
    steps = np.arange(0, 50, 7)
    # trial 1 has three chunks on disk but its manifest says 5 steps ran (the files of a
    # component whose other recorders lag): it covers 5 steps, 2 x 5 < 1 x 50
    _write_recording(Path(f"{out}.recorded"),
                     [{"trial": 0, "files": 5, "done": 50, "spikes": (steps, steps % 2)},
                      {"trial": 1, "files": 3, "done": 5, "spikes": (steps, steps % 2)}],
                     n_steps=50, chunk=10, n_trials=2)
    kept_steps, trials = read_partial(out)
    assert kept_steps == 50 and len(trials) == 1
    np.testing.assert_array_equal(trials[0][0]["p"][0], steps)


def test_read_partial_needs_every_component_of_a_trial(tmp_path):
    out = tmp_path / "out.h5"
    steps = np.arange(0, 20, 2)
    # two components per trial; the second never started: no step of trial 0 is complete
    _write_recording(Path(f"{out}.recorded"),
                     [{"trial": 0, "files": 2, "done": 20, "spikes": (steps, steps % 2)}],
                     n_steps=20, chunk=10, n_trials=1, components=2)
    assert read_partial(out) is None
    assert read_partial(tmp_path / "nothing.h5") is None


# --------------------------------------------------------------------------- a real worker
def _recorded_steps(worker: int) -> int:
    """Steps the real worker has recorded, from its manifest (0 until it exists)."""
    try:
        args = Path(f"/proc/{worker}/cmdline").read_text().split("\0")
        manifest = json.loads(Path(f"{args[3]}.recorded/manifest.json").read_text())
    except (OSError, IndexError, ValueError):
        return 0
    return sum(e["done"] for e in manifest["entries"])


@pytest.mark.slow
@needs_lava
def test_killed_lava_worker_ends_the_cli_with_one_error_and_keeps_its_steps(tmp_path):
    out = tmp_path / "r.h5"
    cli = subprocess.Popen([sys.executable, "-m", "evospike.cli", "run", "examples/cuba.py",
                            "--backend", "lava", "--duration", "100s", "--out", str(out),
                            "--no-progress"], cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        worker = None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and cli.poll() is None:
            worker = worker or next((pid for pid in _children(cli.pid)
                                     if b"worker.py" in Path(f"/proc/{pid}/cmdline")
                                     .read_bytes()), None)
            if worker is not None and _recorded_steps(worker) >= 500:  # one chunk kept
                break
            time.sleep(0.2)
        assert worker is not None and cli.poll() is None, cli.communicate()
        pgid = os.getpgid(worker)
        assert pgid != os.getpgid(cli.pid)  # the worker has a group of its own
        os.kill(worker, signal.SIGKILL)
        killed = time.monotonic()
        stdout, stderr = cli.communicate(timeout=30)
        assert time.monotonic() - killed < 30
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 2, (stdout, stderr)
    errors = [line for line in stderr.splitlines() if line.startswith("evospike: error:")]
    assert len(errors) == 1, stderr
    assert "killed by signal SIGKILL" in errors[0] and str(out) in errors[0]
    assert not any(".py:" in line for line in stderr.splitlines()), stderr  # no raw warnings
    assert _group_gone(pgid), "a process of the worker's group is still running"
    res = Results.load(out)
    assert not res.complete
    n_steps = res.n_steps
    assert 500 <= n_steps < 1_000_000 and n_steps % 500 == 0  # whole chunks
    # the steps kept are those of the run: a complete run that long has the same spikes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LavaWarning)
        net = load_model(ROOT / "examples" / "cuba.py")
        ref = get_backend("lava").compile(net, progress=False).run(n_steps * net.dt_ms)
    assert ref.complete and ref.n_steps == n_steps
    for pop in ("exc", "inh"):
        got, want = res.spike_steps(pop), ref.spike_steps(pop)
        assert want[0].size > 0
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_stderr_relay_defaults_to_lava_warnings(tmp_path):
    err = tmp_path / "stderr"
    err.write_text("x.py:1: UserWarning: hello\n")
    with pytest.warns(LavaWarning, match="^lava: UserWarning: hello$"):
        StderrRelay(err).finish()
