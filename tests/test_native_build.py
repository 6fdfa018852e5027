"""evospike.native_build: the one build cache of EvoSpike's C kernels (issue 14)."""

from __future__ import annotations

import ctypes
import os
import subprocess
from pathlib import Path

import pytest
import torch

import evospike.native_build as nb
from evospike.backends.torch.native.build import load_kernel
from evospike.training import native as train_native

ADD = "int add(int a, int b) { return a + b; }\n"
FLAGS = ["-O1", "-fPIC", "-shared"]

needs_compiler = pytest.mark.skipif(nb.find_compiler() is None, reason="no C compiler here")


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("EVOSPIKE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "native"


@pytest.fixture
def no_compiler(tmp_path, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("PATH", str(empty))


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("EVOSPIKE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert nb.cache_dir() == tmp_path / "xdg" / "evospike" / "native"
    monkeypatch.setenv("EVOSPIKE_CACHE_DIR", str(tmp_path / "own"))
    assert nb.cache_dir() == tmp_path / "own" / "native"


@needs_compiler
def test_builds_loads_and_leaves_only_the_library(cache):
    lib = nb.load_library("adder", ADD, FLAGS)
    assert lib.add(2, 40) == 42
    files = sorted(p.name for p in cache.iterdir())
    assert len(files) == 1 and files[0].startswith("adder_") and files[0].endswith(".so"), files


@needs_compiler
def test_a_cached_library_is_not_built_again(cache, monkeypatch):
    first = nb.build_library("adder", ADD, FLAGS)
    mtime = first.stat().st_mtime_ns

    def no_compiling(*args, **kwargs):
        raise AssertionError(f"compiled again: {args}")

    monkeypatch.setattr(subprocess, "run", no_compiling)
    assert nb.build_library("adder", ADD, FLAGS) == first
    assert first.stat().st_mtime_ns == mtime


@needs_compiler
def test_the_key_is_source_flags_and_compiler(cache, tmp_path):
    cc = nb.find_compiler()
    base = nb.library_path("adder", ADD, FLAGS, cc)
    assert nb.library_path("adder", ADD, FLAGS, cc) == base
    assert nb.library_path("adder", ADD + "\n", FLAGS, cc) != base
    assert nb.library_path("adder", ADD, [*FLAGS, "-DX=1"], cc) != base
    # another compiler (another binary, another --version) builds afresh ...
    other = tmp_path / "othercc"
    other.write_text("#!/bin/sh\necho 'othercc 9.9'\n")
    other.chmod(0o755)
    assert nb.library_path("adder", ADD, FLAGS, str(other)) != base
    # ... the same compiler under another name does not
    alias = tmp_path / "alias-cc"
    alias.symlink_to(os.path.realpath(cc))
    assert nb.library_path("adder", ADD, FLAGS, str(alias)) == base


@needs_compiler
def test_the_library_appears_by_one_rename_from_the_cache_folder(cache, monkeypatch):
    renames = []
    replace = os.replace

    def recording(src, dst):
        renames.append((Path(src), Path(dst), Path(dst).exists()))
        replace(src, dst)

    monkeypatch.setattr(os, "replace", recording)
    target = nb.build_library("adder", ADD, FLAGS)
    assert len(renames) == 1
    src, dst, existed = renames[0]
    assert dst == target and not existed  # nothing half-written ever sat at the target
    assert src.parent == target.parent and src != target  # same folder: the rename is atomic


@needs_compiler
def test_a_compiler_error_is_reported_and_leaves_nothing(cache):
    with pytest.raises(nb.NativeBuildError) as err:
        nb.build_library("broken", "int f(void) { return missing; }\n", FLAGS, label="broken.c")
    text = str(err.value)
    assert text.startswith("compiling broken.c failed:") and "missing" in text, text
    assert list(cache.iterdir()) == []


def test_no_compiler_has_one_reason(cache, no_compiler):
    assert nb.find_compiler() is None
    with pytest.raises(nb.NativeBuildError, match=r"^no C compiler found \(set CC or install "
                                                  r"gcc\)$"):
        nb.build_library("adder", ADD, FLAGS)
    assert nb.NO_COMPILER == "no C compiler found (set CC or install gcc)"


@needs_compiler
def test_an_unwritable_cache_is_named(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("EVOSPIKE_CACHE_DIR", str(blocker))
    with pytest.raises(nb.NativeBuildError, match="cannot write the native build cache .*a-file"):
        nb.build_library("adder", ADD, FLAGS)


def test_both_kernels_fall_back_without_a_compiler(cache, no_compiler):
    load_kernel.cache_clear()
    train_native._library.cache_clear()
    try:
        with pytest.raises(nb.NativeBuildError, match="no C compiler found"):
            load_kernel("float32")
        assert not train_native.available(torch.zeros(1))  # the torch loops run instead
    finally:
        load_kernel.cache_clear()  # the next user loads the cached kernels again
        train_native._library.cache_clear()


@needs_compiler
def test_both_kernels_live_in_the_one_cache():
    kernel = load_kernel("float64")
    training = train_native._library(torch.float64)
    assert isinstance(training, ctypes.CDLL)
    for lib in (kernel, training):
        assert Path(lib._name).parent == nb.cache_dir(), lib._name
