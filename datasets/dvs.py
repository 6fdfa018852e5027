"""DVS128 Gesture through tonic, and a synthetic moving-shape event stream with the same frames.

Events are tonic's structured arrays (fields x, y, p, t; t in microseconds). Frames come from
tonic's NumPy transforms: ``Denoise`` -> ``Downsample`` -> ``ToFrame(n_time_bins=T)``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from evospike.datasets.base import (
    LabelledDataset,
    check_positive_int,
    check_split,
)
from evospike.errors import EvoSpikeError, ValidationError

SENSOR_SIZE = (128, 128, 2)  # DVS128: width, height, polarities (tonic's convention)
#: tonic's DVSGesture event dtype (x, y, p, t with t in microseconds)
EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("p", bool), ("t", np.int64)])
GESTURE_CLASSES = (
    "hand clapping", "right hand wave", "left hand wave", "right arm clockwise",
    "right arm counter-clockwise", "left arm clockwise", "left arm counter-clockwise",
    "arm roll", "air drums", "air guitar", "other gestures",
)
_FOLDERS = {"train": "ibmGestureTrain", "test": "ibmGestureTest"}
_URL = "https://figshare.com/ndownloader/files/38022171 (train), 38020584 (test)"


def _check_frame_args(kind: str, n_time_bins, size, denoise_us) -> tuple[int, int, float | None]:
    n_time_bins = check_positive_int(kind, "n_time_bins", n_time_bins)
    size = check_positive_int(kind, "size", size)
    if size > SENSOR_SIZE[0]:
        raise ValidationError(kind, kind, "size", f"must be at most the sensor's "
                              f"{SENSOR_SIZE[0]} pixels (downsampling only)", size)
    if denoise_us is not None and not (np.isfinite(denoise_us) and denoise_us > 0):
        raise ValidationError(kind, kind, "denoise_us", "must be a positive time in "
                              "microseconds, or None to skip denoising", denoise_us)
    return n_time_bins, size, None if denoise_us is None else float(denoise_us)


def events_to_frames(events: np.ndarray, n_time_bins: int = 16, size: int = 32,
                     denoise_us: float | None = None, binary: bool = False,
                     sensor_size: tuple[int, int, int] = SENSOR_SIZE) -> torch.Tensor:
    """Turn a tonic event array into frames with tonic's NumPy transforms.

    ``events``: structured array with fields x, y, p, t (t in microseconds, sorted), on a
    sensor of ``sensor_size`` (width, height, polarities). Steps: ``Denoise(filter_time=
    denoise_us)`` (skipped when None: an event survives only if a neighbouring pixel fired
    within that time), ``Downsample`` to ``size x size``, ``ToFrame(n_time_bins)`` (tonic spans
    the bins from the first to the last event). Returns float32 ``[n_time_bins, polarities,
    size, size]``: the number of events per bin, polarity and pixel (``binary``: 1 where any).
    An empty stream (or one emptied by denoising) gives all-zero frames.
    """
    import tonic.transforms as tt

    n_time_bins, size, denoise_us = _check_frame_args("events_to_frames", n_time_bins, size,
                                                      denoise_us)
    names = events.dtype.names or ()
    missing = [f for f in ("x", "y", "p", "t") if f not in names]
    if missing:
        raise ValidationError("events_to_frames", "events", "dtype",
                              f"lacks the field(s) {missing}", events.dtype)
    n_pol = sensor_size[2]
    out = np.zeros((n_time_bins, n_pol, size, size), dtype=np.float32)
    if len(events) and denoise_us is not None:
        events = tt.Denoise(filter_time=denoise_us)(events)
    if len(events):
        if size != sensor_size[0] or size != sensor_size[1]:
            events = tt.Downsample(sensor_size=sensor_size, target_size=(size, size))(events)
        frames = tt.ToFrame(sensor_size=(size, size, n_pol), n_time_bins=n_time_bins)(events)
        out[: frames.shape[0]] = frames
    if binary:
        out = (out > 0).astype(np.float32)
    return torch.from_numpy(out)


class _FrameDataset(LabelledDataset):
    """Shared frame pipeline of the event data sets: x = `events_to_frames` of ``events(i)``."""

    n_time_bins: int
    size: int
    denoise_us: float | None
    binary: bool
    cache: bool
    _cache: dict

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (self.n_time_bins, SENSOR_SIZE[2], self.size, self.size)

    def events(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def _get(self, i: int) -> torch.Tensor:
        if self.cache and i in self._cache:
            return self._cache[i]
        frames = events_to_frames(self.events(i), self.n_time_bins, self.size, self.denoise_us,
                                  self.binary)
        if self.cache:
            self._cache[i] = frames
        return frames


class DVSGesture(_FrameDataset):
    """DVS128 Gesture (Amir et al. 2017) read through ``tonic.datasets.DVSGesture``.

    Expects tonic's layout: ``root/DVSGesture/ibmGestureTrain/userNN_<lighting>/<label>.npy``
    (``ibmGestureTest`` for the test split), each file an ``(N, 4)`` array of events with
    columns x, y, p, t (t in milliseconds), as tonic's archives ``ibmGestureTrain.tar.gz`` /
    ``ibmGestureTest.tar.gz`` unpack. x: float32 ``[n_time_bins, 2, size, size]`` (see
    `events_to_frames`); 11 classes. ``download=True`` hands the folder to tonic unchecked,
    which downloads the archive when it is missing (needs network access).
    ``cache=True`` keeps computed frames in memory (tonic's denoise is a Python loop per event).
    """

    name = "DVS128 Gesture"
    synthetic = False
    classes = GESTURE_CLASSES

    def __init__(self, root: str | os.PathLike, split: str = "train", n_time_bins: int = 16,
                 size: int = 32, denoise_us: float | None = 10000.0, binary: bool = False,
                 download: bool = False, cache: bool = False):
        import tonic

        self.split = check_split("DVSGesture", split, ("train", "test"))
        self.n_time_bins, self.size, self.denoise_us = _check_frame_args(
            "DVSGesture", n_time_bins, size, denoise_us)
        self.binary = bool(binary)
        self.cache = bool(cache)
        self._cache = {}
        self.root = Path(root)
        folder = self.root / "DVSGesture" / _FOLDERS[split]
        if download:
            try:
                ds = tonic.datasets.DVSGesture(save_to=str(self.root), train=split == "train")
            except Exception as exc:  # no network, bad archive, full disk, ...
                raise EvoSpikeError(f"DVS128 Gesture ({split}): tonic could not fetch or "
                                    f"unpack the data set into '{folder.parent}': "
                                    f"{type(exc).__name__}: {exc}") from None
        else:
            _check_gesture_folder(folder, split)
            ds = _make_local_gesture(tonic)(save_to=str(self.root), train=split == "train")
        self._tonic = ds
        if len(ds.data) == 0:
            raise EvoSpikeError(f"DVS128 Gesture ({split}): no sample files '<label>.npy' in "
                                f"the user folders of '{folder}'")
        labels = np.asarray(ds.targets, dtype=np.int64)
        bad = (labels < 0) | (labels >= len(GESTURE_CLASSES))
        if bad.any():
            k = int(np.argmax(bad))
            raise EvoSpikeError(f"DVS128 Gesture: file '{ds.data[k]}' names label "
                                f"{labels[k]}, outside the 11 classes 0..10")
        self._labels = labels
        self.files = list(ds.data)
        self.users = np.asarray(ds.users, dtype=np.int64)
        self.lighting = list(ds.lighting)

    def _reader(self):
        if self._tonic is None:  # after unpickling (DataLoader workers): the folder is checked
            import tonic

            self._tonic = _make_local_gesture(tonic)(save_to=str(self.root),
                                                     train=self.split == "train")
        return self._tonic

    def __getstate__(self):
        # tonic's reader is an instance of a class made at run time: leave it out, rebuild it
        state = dict(self.__dict__)
        state["_tonic"] = None
        return state

    def events(self, index: int) -> np.ndarray:
        """The raw events of sample ``index`` as tonic reads them (x, y, p, t in us)."""
        i = self._check_index(index)
        try:
            events, _ = self._reader()[i]
        except Exception as exc:  # numpy/tonic raise many kinds on a bad file
            raise EvoSpikeError(f"DVS128 Gesture: cannot read '{self.files[i]}' as an (N, 4) "
                                f"event array with columns x, y, p, t[ms]: {exc}") from None
        return events


def _check_gesture_folder(folder: Path, split: str) -> None:
    hint = (f"DVS128 Gesture ({split}) expected the extracted folder '{folder}' with "
            f"userNN_<lighting>/<label>.npy files (tonic's {_FOLDERS[split]}.tar.gz from "
            f"{_URL}). Unpack the archive there, or pass download=True to let "
            f"tonic.datasets.DVSGesture fetch it where the network allows.")
    if not folder.is_dir():
        raise EvoSpikeError(f"{hint} The folder does not exist.")
    if not any(folder.glob("*/*.npy")):
        raise EvoSpikeError(f"{hint} The folder has no such files.")
    for path in folder.glob("*/*.npy"):
        user_dir = path.parent.name
        if not (user_dir.startswith("user") and "_" in user_dir
                and user_dir[4:].split("_", 1)[0].isdigit()):
            raise EvoSpikeError(f"DVS128 Gesture: folder '{path.parent}' is not named "
                                f"userNN_<lighting> as tonic expects")
        if not path.stem.isdigit():
            raise EvoSpikeError(f"DVS128 Gesture: file '{path}' is not named <label>.npy "
                                f"(label 0..10) as tonic expects")


_LOCAL_CLASS = None


def _make_local_gesture(tonic):
    """tonic's DVSGesture that never downloads: it trusts the extracted folder we checked.

    tonic's own check also wants the .tar.gz archive and at least 100 files, and downloads
    when they are missing; we have already verified the folder and must not reach the network.
    """
    global _LOCAL_CLASS
    if _LOCAL_CLASS is None:
        class DVSGesture(tonic.datasets.DVSGesture):  # same name: tonic uses it as the folder
            def _check_exists(self):
                return True

        _LOCAL_CLASS = DVSGesture
    return _LOCAL_CLASS


class SyntheticDVSGesture(_FrameDataset):
    """SYNTHETIC event streams: a bright square moving across a 128x128 DVS in one of
    ``n_classes`` directions (class k moves at angle 2*pi*k/n_classes), with random start, size,
    speed and background noise events. The events are what a DVS would report: ON (p=1) where
    the square arrives, OFF (p=0) where it leaves, in tonic's DVSGesture dtype with t in
    microseconds. x: float32 ``[n_time_bins, 2, size, size]`` through the same tonic pipeline as
    `DVSGesture`. Each sample is drawn from ``(seed, split, index)``, so it is the same on every
    access and the splits never share a sample; classes are balanced (label = index mod
    n_classes).
    """

    synthetic = True

    def __init__(self, n_samples: int = 200, n_classes: int = 4, split: str = "train",
                 seed: int = 0, duration_ms: float = 500.0, n_time_bins: int = 16,
                 size: int = 32, denoise_us: float | None = None, binary: bool = False,
                 noise_events: int = 100, cache: bool = False):
        kind = "SyntheticDVSGesture"
        self.split = check_split(kind, split, ("train", "test"))
        n_samples = check_positive_int(kind, "n_samples", n_samples)
        self.n_classes_ = check_positive_int(kind, "n_classes", n_classes, minimum=2)
        self.n_time_bins, self.size, self.denoise_us = _check_frame_args(
            kind, n_time_bins, size, denoise_us)
        if not (np.isfinite(duration_ms) and duration_ms >= 10.0):
            raise ValidationError(kind, kind, "duration_ms", "must be at least 10 ms",
                                  duration_ms)
        self.noise_events = check_positive_int(kind, "noise_events", noise_events, minimum=0)
        self.duration_ms = float(duration_ms)
        self.seed = int(seed)
        self.binary = bool(binary)
        self.cache = bool(cache)
        self._cache = {}
        self.name = f"synthetic moving shapes ({n_classes} directions)"
        self.classes = tuple(f"direction {360.0 * k / n_classes:g} deg"
                             for k in range(n_classes))
        self._labels = np.arange(n_samples, dtype=np.int64) % n_classes

    def events(self, index: int) -> np.ndarray:
        """Events of sample ``index``: structured (x, y, p, t[us]) sorted by time."""
        i = self._check_index(index)
        split_code = 0 if self.split == "train" else 1
        rng = np.random.default_rng([self.seed, split_code, i])
        return _moving_square_events(rng, int(self._labels[i]), self.n_classes_,
                                     self.duration_ms, self.noise_events)


def _moving_square_events(rng: np.random.Generator, label: int, n_classes: int,
                          duration_ms: float, noise_events: int) -> np.ndarray:
    width, height = SENSOR_SIZE[:2]
    side = int(rng.integers(12, 24))
    angle = 2.0 * np.pi * label / n_classes + rng.normal(0.0, 0.1)
    direction = np.array([np.cos(angle), np.sin(angle)])
    travel = rng.uniform(50.0, 80.0)  # pixels covered over the whole sample
    centre = np.array([width / 2, height / 2]) + rng.uniform(-10, 10, 2)
    start = centre - direction * travel / 2
    step_ms = 1.0
    n_frames = int(duration_ms / step_ms) + 1
    xs, ys, ps, ts = [], [], [], []
    prev = None
    for k in range(n_frames):
        pos = start + direction * travel * k / (n_frames - 1)
        # pixels whose index lies in [pos - side/2, pos + side/2), clipped to the sensor
        rect = tuple(int(np.clip(np.ceil(v), 0, lim)) for v, lim in (
            (pos[0] - side / 2, width), (pos[0] + side / 2, width),
            (pos[1] - side / 2, height), (pos[1] + side / 2, height)))
        if prev is not None and rect != prev:
            # only the union of the two squares can change: work on that window alone
            x0, x1 = min(rect[0], prev[0]), max(rect[1], prev[1])
            y0, y1 = min(rect[2], prev[2]), max(rect[3], prev[3])
            gx, gy = np.arange(x0, x1), np.arange(y0, y1)

            def cover(r, gx=gx, gy=gy):
                return (((gy >= r[2]) & (gy < r[3]))[:, None]
                        & ((gx >= r[0]) & (gx < r[1]))[None, :])

            now, before = cover(rect), cover(prev)
            on_y, on_x = np.nonzero(now & ~before)
            off_y, off_x = np.nonzero(before & ~now)
            n_on, n_off = on_x.size, off_x.size
            t0 = k * step_ms * 1000.0
            jitter = rng.uniform(0.0, step_ms * 1000.0, n_on + n_off)
            xs += [on_x + x0, off_x + x0]
            ys += [on_y + y0, off_y + y0]
            ps += [np.ones(n_on, bool), np.zeros(n_off, bool)]
            ts.append(t0 - jitter)
        prev = rect
    noise_t = rng.uniform(0.0, duration_ms * 1000.0, noise_events)
    xs.append(rng.integers(0, width, noise_events))
    ys.append(rng.integers(0, height, noise_events))
    ps.append(rng.random(noise_events) < 0.5)
    ts.append(noise_t)
    events = np.zeros(sum(len(a) for a in xs), dtype=EVENT_DTYPE)
    events["x"] = np.concatenate(xs)
    events["y"] = np.concatenate(ys)
    events["p"] = np.concatenate(ps)
    events["t"] = np.concatenate(ts).astype(np.int64)
    return events[np.argsort(events["t"], kind="stable")]
