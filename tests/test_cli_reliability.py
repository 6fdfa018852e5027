"""The `evospike run` / `validate` command path never loses a run, and every user error is one
line found before anything is simulated (issue 13)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import evospike.backends.torch as torch_backend
import evospike.model_loading as model_loading
from evospike.backends.torch import eager
from evospike.backends.torch.native import build as native_build
from evospike.backends.torch.runner import TorchRunner
from evospike.cli.checks import MAX_SEED
from evospike.cli.main import _parser, main
from evospike.errors import EvoSpikeError
from evospike.results import Results
from tests.conftest import ROOT

TINY = '''
from evospike import LIF, FixedProbability, Network


def build(dt_ms: float = 0.1) -> Network:
    cell = LIF(tau_m_ms=10.0, v_rest_mV=-49.0, v_reset_mV=-60.0, v_thresh_mV=-50.0,
               tau_syn_exc_ms=5.0, tau_syn_inh_ms=10.0, tau_refrac_ms=2.0)
    net = Network("tiny", dt_ms=dt_ms)
    a = net.population("a", 20, cell, initial={"v": -55.0})
    net.connect(a, a, FixedProbability(0.2, seed=1), weight=1.0, delay_ms=dt_ms, target="exc")
    net.record_spikes(a)
    if TRACE:
        net.record_state(a, "v")
    return net
'''


def write_model(folder, name="tiny.py", trace=False):
    path = folder / name
    path.write_text(f"TRACE = {trace}\n" + TINY)
    return path


@pytest.fixture
def model(tmp_path):
    return write_model(tmp_path)


@pytest.fixture
def no_load(monkeypatch):
    """Checks that must come before the model is loaded: loading says so, as a user error, so a
    test sees it reached the load."""
    def refuse(*args, **kwargs):
        raise EvoSpikeError("MODEL LOADED")

    monkeypatch.setattr(model_loading, "load_model", refuse)


@pytest.fixture
def no_compile(monkeypatch):
    def refuse(*args, **kwargs):
        raise EvoSpikeError("COMPILED")

    monkeypatch.setattr(torch_backend, "compile", refuse)


def one_line_error(capsys, code, *fragments):
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("evospike: error:"), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "MODEL LOADED" not in lines[0] and "COMPILED" not in lines[0], lines[0]
    return lines[0]


def run_args(model, out, *extra):
    return ["run", str(model), "--duration", "20ms", "--out", str(out), "--no-progress", *extra]


# ------------------------------------------------------------------ 1, 2: where the results go
def test_out_equal_to_the_model_is_refused(tmp_path, model, capsys, monkeypatch, no_compile):
    before = model.read_bytes()
    link = tmp_path / "link.py"
    link.symlink_to(model)
    hard = tmp_path / "hard.py"
    os.link(model, hard)
    monkeypatch.chdir(tmp_path)
    sub = tmp_path / "sub"
    sub.mkdir()
    for out in (model, "tiny.py", "sub/../tiny.py", link, hard):
        code = main(run_args(model, out))
        one_line_error(capsys, code, f"--out '{out}'", "is the model file")
    assert model.read_bytes() == before
    # a saved network given as its own --out
    from tests.conftest import load_example

    net_file = tmp_path / "net.h5"
    load_example("quickstart").build().save(net_file)
    before = net_file.read_bytes()
    code = main(run_args(net_file, "./net.h5"))
    one_line_error(capsys, code, "'./net.h5'", "is the model file")
    assert net_file.read_bytes() == before


def read_only_folder(tmp_path):
    """A folder where no file can be created, or skip: chmod does not stop root, so root gets
    a read-only tmpfs."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return folder, lambda: folder.chmod(0o755)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"root, and mounting a read-only tmpfs is not permitted: {done.stderr}")
    return folder, lambda: subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize("case", ["folder", "parent is a file", "proc", "empty", "read-only"])
def test_unwritable_out_is_refused_before_loading(case, tmp_path, model, capsys, no_load):
    cleanup = None
    if case == "folder":
        out, fragment = tmp_path, "is a folder, not a file"
    elif case == "parent is a file":
        out, fragment = model / "r.h5", "is a file, not a folder"
    elif case == "proc":
        out, fragment = "/proc/evospike-results.h5", "cannot be written"
    elif case == "empty":
        out, fragment = "", "--out is empty"
    else:
        folder, cleanup = read_only_folder(tmp_path)
        out, fragment = folder / "sub" / "r.h5", "cannot be written"
    try:
        code = main(run_args(model, out))
        one_line_error(capsys, code, fragment, f"'{out}'" if out else "")
        if cleanup:
            assert not (tmp_path / "ro" / "sub").exists()
    finally:
        if cleanup:
            cleanup()


def test_writable_out_in_a_new_folder_is_accepted(tmp_path, model, capsys, no_load):
    code = main(run_args(model, tmp_path / "new" / "deeper" / "r.h5"))
    assert code == 2 and "MODEL LOADED" in capsys.readouterr().err  # got as far as loading
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.py"]  # the probe left nothing


# ------------------------------------------------------------------ 3: disk full while saving
@pytest.mark.parametrize("failing", ["write", "fsync", "replace"])
def test_disk_full_during_save_is_one_line_and_keeps_the_old_file(failing, tmp_path, model,
                                                                   capsys, monkeypatch):
    out = tmp_path / "r.h5"
    assert main(run_args(model, out)) == 0
    before = out.read_bytes()
    capsys.readouterr()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, failing, full)
    code = main(run_args(model, out, "--duration", "40ms"))
    monkeypatch.undo()
    one_line_error(capsys, code, f"cannot write '{out}'", "No space left on device")
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.h5", "tiny.py"]


def test_disk_full_on_a_small_tmpfs(tmp_path, capsys):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        model = write_model(tmp_path, trace=True)  # v of 20 neurons every step: 160 kB per 100 ms
        out = disk / "r.h5"
        assert main(run_args(model, out, "--duration", "2ms")) == 0
        before = out.read_bytes()
        capsys.readouterr()
        code = main(run_args(model, out, "--duration", "100ms"))
        one_line_error(capsys, code, f"cannot write '{out}'", "No space left on device")
        assert out.read_bytes() == before
        assert [p.name for p in disk.iterdir()] == ["r.h5"]
    finally:
        subprocess.run(["umount", str(disk)], check=True)


# ------------------------------------------------------------------ 4: SIGTERM and SIGHUP
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_save_incomplete_results(signum, tmp_path, model, capsys,
                                                    monkeypatch):
    original = TorchRunner._chunk_inputs
    calls = {"n": 0}

    def signal_on_third_chunk(self, start, n):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signum)
        return original(self, start, n)

    monkeypatch.setattr(TorchRunner, "_chunk_inputs", signal_on_third_chunk)
    before = signal.getsignal(signum)
    out = tmp_path / "r.h5"
    code = main(run_args(model, out, "--duration", "1000ms"))
    err = capsys.readouterr().err
    assert code == 130, err
    assert signal.Signals(signum).name in err and "Traceback" not in err
    assert signal.getsignal(signum) is before  # main put the handler back
    res = Results.load(out)
    assert not res.complete
    assert 0 < res.n_steps < 10_000
    assert res.spikes_by_node["a"].step.max() < res.n_steps


def test_interrupt_mid_chunk_keeps_the_spikes_of_the_steps_run(model, monkeypatch):
    """The eager engine, stopped inside a chunk, keeps exactly the spikes of the steps it ran
    (it used to drop the whole chunk while counting its steps as run)."""
    net = model_loading.load_model(model)
    full = torch_backend.compile(net, engine="eager", progress=False).run(150.0)
    original = eager.run_step

    def stop_at_1200(cn, step, *args):
        if step == 1200:
            raise KeyboardInterrupt
        return original(cn, step, *args)

    monkeypatch.setattr(eager, "run_step", stop_at_1200)
    cut = torch_backend.compile(model_loading.load_model(model), engine="eager",
                                progress=False).run(150.0)
    assert not cut.complete and cut.n_steps == 1200
    steps, neurons = full.spike_steps("a")
    keep = steps < 1200
    got_steps, got_neurons = cut.spike_steps("a")
    assert np.sum(keep) > np.sum(steps < 1000)  # the cut chunk had spikes to lose
    np.testing.assert_array_equal(got_steps, steps[keep])
    np.testing.assert_array_equal(got_neurons, neurons[keep])


@pytest.mark.slow
def test_sigterm_to_a_running_process_saves_incomplete_results(tmp_path):
    out = tmp_path / "r.h5"
    log = tmp_path / "stderr.txt"
    requested_steps = 10_000_000  # 1000 s at 0.1 ms: far longer than the test waits
    with open(log, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "evospike.cli", "run",
                                 str(ROOT / "examples" / "cuba.py"), "--duration", "1000s",
                                 "--out", str(out)], stdout=subprocess.DEVNULL, stderr=stderr,
                                cwd=tmp_path)
        try:
            deadline = time.monotonic() + 180
            while "step" not in log.read_text() and proc.poll() is None:
                assert time.monotonic() < deadline, "no progress bar after 180 s"
                time.sleep(0.2)
            assert proc.poll() is None, log.read_text()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    err = log.read_text()
    assert code == 130, err
    assert "Traceback" not in err and "SIGTERM" in err
    res = Results.load(out)
    assert not res.complete
    assert 0 < res.n_steps < requested_steps


# ------------------------------------------------------------------ 5: seeds
@pytest.mark.parametrize("seed, trials", [(-1, 1), (2**64, 1), (MAX_SEED, 2),
                                          (0, MAX_SEED + 2)])
def test_seeds_out_of_range_are_refused_before_loading(seed, trials, model, tmp_path, capsys,
                                                       no_load):
    code = main(run_args(model, tmp_path / "r.h5", "--seed", str(seed), "--trials",
                         str(trials)))
    one_line_error(capsys, code, f"--seed {seed} with --trials {trials}", str(MAX_SEED))


def test_the_largest_seed_runs_and_saves(model, tmp_path, capsys):
    out = tmp_path / "r.h5"
    assert main(run_args(model, out, "--seed", str(MAX_SEED))) == 0
    assert Results.load(out).meta["seeds"].tolist() == [MAX_SEED]


# ------------------------------------------------------------------ 6: build() failing
@pytest.mark.parametrize("body, fragments", [
    ("def build():\n    raise ValueError('bad\\nparameter')\n",
     ["build() in", "failed: ValueError: bad parameter"]),
    ("def build(n_neurons, *, scale):\n    pass\n",
     ["must be callable without arguments", "requires n_neurons, scale"]),
    ("import sys\ndef build():\n    sys.exit(3)\n", ["build() in", "sys.exit(3)"]),
    ("from evospike import Network\ndef build():\n    return Network('x', dt_ms=-1.0)\n",
     ["build() in", "dt"]),
])
def test_failing_build_is_one_line_naming_the_model(body, fragments, tmp_path, capsys):
    path = tmp_path / "broken_model.py"
    path.write_text(body)
    code = main(run_args(path, tmp_path / "r.h5"))
    one_line_error(capsys, code, str(path), *fragments)


# ------------------------------------------------------------------ 7: devices
@pytest.mark.parametrize("device, cuda, fragment", [
    ("meta", False, "not on 'meta'"),
    ("mps", False, "not on 'mps'"),
    ("cpu:5", False, "takes no device index"),
    ("banana", False, "is not a torch device"),
    ("cuda", False, "CUDA is not available"),
    ("cuda:3", True, "has 1 CUDA device(s)"),
])
def test_bad_device_is_refused_before_loading(device, cuda, fragment, model, tmp_path, capsys,
                                              monkeypatch, no_load):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    code = main(run_args(model, tmp_path / "r.h5", "--device", device))
    one_line_error(capsys, code, f"--device '{device}'", fragment)


# ------------------------------------------------------------------ 8: closed output pipe
def test_closed_pipe_while_printing_exits_141(tmp_path, model, capsys, monkeypatch):
    out = tmp_path / "r.h5"
    assert main(run_args(model, out)) == 0
    capsys.readouterr()

    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["info", str(out)]) == 141
    assert capsys.readouterr().err == ""


@pytest.mark.slow
def test_closed_stdout_pipe_exits_quietly(tmp_path, model, capsys):
    out = tmp_path / "r.h5"
    assert main(run_args(model, out)) == 0
    proc = subprocess.Popen([sys.executable, "-m", "evospike.cli", "info", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the command writes (like `| head -0`)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert err == ""


# ------------------------------------------------------------------ 9: durations
@pytest.mark.parametrize("duration, fragment", [
    ("1e-300ms", "shorter than one time step (0.1 ms)"),
    ("0.15ms", "not a whole number of 0.1 ms time steps"),
])
def test_duration_under_or_between_steps_is_refused_before_compiling(duration, fragment, model,
                                                                     tmp_path, capsys,
                                                                     no_compile):
    code = main(["run", str(model), "--duration", duration, "--out", str(tmp_path / "r.h5")])
    one_line_error(capsys, code, "--duration", fragment, duration)
    assert not (tmp_path / "r.h5").exists()


@pytest.mark.parametrize("argv, fragment", [
    (["--duration", "-5ms"], "must be a positive, finite time (got '-5ms')"),
    (["--dt", "-0.1ms"], "must be a positive, finite time (got '-0.1ms')"),
    (["--duration", "-inf"], "is not a time like '1000ms' or '1s' (got '-inf')"),
])
def test_negative_looking_values_get_our_message(argv, fragment, model, tmp_path, capsys,
                                                 no_load):
    code = main(["run", str(model), "--out", str(tmp_path / "r.h5"), *argv])
    one_line_error(capsys, code, argv[0], fragment)


# ------------------------------------------------------------------ 10: validate options
@pytest.mark.parametrize("extra, fragment", [
    (["--margin", "0"], "--margin must be a finite number > 0 (got 0.0)"),
    (["--margin", "-1"], "--margin must be a finite number > 0 (got -1.0)"),
    (["--margin", "nan"], "--margin must be a finite number > 0 (got nan)"),
    (["--margin", "inf"], "--margin must be a finite number > 0 (got inf)"),
    (["--tolerance-steps", "-1"], "--tolerance-steps must be 0 or more (got -1)"),
    (["--reference-seeds", "1"], "--reference-seeds must be at least 2 (got 1)"),
    (["--seed", "-3"], "(got --seed -3)"),
    (["--seed", str(MAX_SEED - 2)], f"(got --seed {MAX_SEED - 2})"),
    (["--against", "genn"], "unknown backend 'genn'"),
    (["--against", "torch"], "candidate and reference are the same"),
    (["--device", "meta"], "--device 'meta'"),
    (["--threads", "0"], "--threads must be at least 1"),
    (["--duration", "-5ms"], "--duration"),
])
def test_validate_checks_every_option_before_loading(extra, fragment, model, tmp_path, capsys,
                                                     no_load):
    code = main(["validate", str(model), "--out-dir", str(tmp_path / "v"), *extra])
    one_line_error(capsys, code, fragment)


def test_validate_out_dir_is_checked_and_a_report_is_not_overwritten(model, tmp_path, capsys,
                                                                     no_load):
    base = ["validate", str(model), "--no-progress"]
    code = main([*base, "--out-dir", str(model)])
    one_line_error(capsys, code, "--out-dir", "is a file, not a folder")
    code = main([*base, "--out-dir", "/proc/evospike-validation"])
    one_line_error(capsys, code, "--out-dir", "cannot be written")
    code = main([*base, "--out-dir", ""])
    one_line_error(capsys, code, "--out-dir is empty")
    folder = tmp_path / "v"
    folder.mkdir()
    (folder / "report.json").write_text("{}\n")
    code = main([*base, "--out-dir", str(folder)])
    one_line_error(capsys, code, "already holds a report (report.json)", "--overwrite")
    assert (folder / "report.json").read_text() == "{}\n"
    assert main([*base, "--out-dir", str(folder), "--overwrite"]) == 2
    assert "MODEL LOADED" in capsys.readouterr().err  # past every check, up to loading


# ------------------------------------------------------------------ 11: --help
def test_help_lists_every_command_on_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    parser = _parser()
    sub = next(a for a in parser._actions if a.choices and "run" in a.choices)
    assert len(sub.choices) >= 8
    for action in sub._choices_actions:
        lines = [line for line in text.splitlines() if line.split()[:1] == [action.dest]]
        assert len(lines) == 1, (action.dest, text)
        assert lines[0].split(None, 1)[1] == action.help


# ------------------------------------------------------------------ 12: threads
def test_threads_are_chosen_recorded_and_shown(model, tmp_path, capsys):
    before = torch.get_num_threads()
    for threads in (1, 2):
        out = tmp_path / f"r{threads}.h5"
        assert main(run_args(model, out, "--threads", str(threads), "--engine", "eager")) == 0
        assert Results.load(out).meta["threads"] == threads
        assert torch.get_num_threads() == before
        capsys.readouterr()
        assert main(["info", str(out)]) == 0
        assert f"{threads} CPU thread(s)" in capsys.readouterr().out
    default = tmp_path / "default.h5"
    assert main(run_args(model, default)) == 0
    assert Results.load(default).meta["threads"] == 1
    code = main(run_args(model, tmp_path / "r.h5", "--threads", "0"))
    one_line_error(capsys, code, "--threads must be at least 1 (got 0)")


# ------------------------------------------------------------------ 13: no C compiler
@pytest.fixture
def no_compiler(tmp_path, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("PATH", str(empty))
    native_build.load_kernel.cache_clear()
    yield
    native_build.load_kernel.cache_clear()  # the next user loads the cached kernel again


def test_missing_compiler_is_announced(model, tmp_path, capsys, no_compiler):
    out = tmp_path / "r.h5"
    assert main(run_args(model, out)) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "native CPU kernel cannot be built" in line]
    assert len(notes) == 1, err
    assert "no C compiler found" in notes[0] and "gcc" in notes[0] and "CC" in notes[0]
    assert Results.load(out).meta["engine"] == "eager"
    # asking for the eager engine is a choice, not a fallback: nothing to announce
    assert main(run_args(model, out, "--engine", "eager")) == 0
    assert "native CPU kernel" not in capsys.readouterr().err


def test_no_announcement_when_the_kernel_builds(model, tmp_path, capsys):
    out = tmp_path / "r.h5"
    assert main(run_args(model, out)) == 0
    assert "native CPU kernel" not in capsys.readouterr().err
    assert Results.load(out).meta["engine"] == "native"
