"""Data sets (tonic DVS128 Gesture, wfdb MIT-BIH, GLUE SST-2, scikit-learn digits), synthetic
generators and spike encoders.

Every data set here is a torch-style map data set (a `LabelledDataset`, a subclass of
``torch.utils.data.Dataset``) and answers alike::

    len(ds)                  number of samples
    ds[i] -> (x, label)      x: torch.Tensor (shape ds.sample_shape, dtype below), label: int
    ds.classes               tuple of class names (index = label); ds.n_classes
    ds.labels                int64 NumPy array (N,)
    ds.sample_shape          shape of one x
    ds.split                 which split this object holds
    ds.synthetic             True for generated data; its ``name`` says "synthetic" too
    ds.class_counts()        int64 (n_classes,)
    ds.class_weights()       float32 tensor (n_classes,): N / (n_classes * count_c), 0 if absent
    ds.subset(indices)       a view of some samples with the same interface
    ds.describe()            one line: name, split, size, shape, class counts

A ``torch.utils.data.DataLoader`` batches them as ``x: [B, *sample_shape]``, ``label: [B]``.
Real data sets are read from a folder; nothing is downloaded (DVSGesture(download=True) lets
tonic fetch it where the network allows). A missing or malformed file is an `EvoSpikeError`
that names the file expected and where.

=====================  ===========================  =================  ==========  ==========
class                  data                         x shape            x dtype     classes
=====================  ===========================  =================  ==========  ==========
Digits                 scikit-learn 8x8 digits      [64] in [0, 1]     float32     10
DVSGesture             tonic DVS128 Gesture         [T, 2, S, S]       float32     11
SyntheticDVSGesture    synthetic moving shapes      [T, 2, S, S]       float32     n_classes
MITBIH                 wfdb MIT-BIH beats           [1, L]             float32     5 (AAMI)
SyntheticECG           synthetic ECG beats          [1, L]             float32     5 (AAMI)
SST2                   GLUE SST-2 TSV               [max_len] ids      int64       2
SyntheticSentiment     synthetic sentences          [max_len] ids      int64       2
=====================  ===========================  =================  ==========  ==========

Constructors (all keyword arguments have defaults; ``split`` picks the part):

- ``Digits(split="train"|"test", test_fraction=0.25, seed=0)``; ``image_shape == (8, 8)``.
  A fixed stratified split of scikit-learn's ``load_digits`` (1797 images).
- ``DVSGesture(root, split="train"|"test", n_time_bins=16, size=32, denoise_us=10000,
  binary=False, download=False, cache=False)``: reads ``root/DVSGesture/ibmGestureTrain``
  (or ``ibmGestureTest``)``/userNN_<lighting>/<label>.npy`` through ``tonic.datasets.DVSGesture``,
  then tonic's ``Denoise`` (``denoise_us=None`` skips it), ``Downsample`` to ``size x size`` and
  ``ToFrame(n_time_bins=T)``: x[t, p, y, x] = number of events of polarity p in bin t
  (``binary=True``: 1 where any). ``ds.events(i)`` gives the raw tonic events (structured array
  x, y, p, t in microseconds); ``ds.users``, ``ds.lighting`` per sample.
- ``SyntheticDVSGesture(n_samples=200, n_classes=4, split="train", seed=0, duration_ms=500,
  n_time_bins=16, size=32, denoise_us=None, binary=False, noise_events=100, cache=False)``:
  a bright square moving in one of
  ``n_classes`` directions on a 128x128 sensor, events in tonic's DVSGesture dtype; the same
  frame pipeline as `DVSGesture`. Splits ("train"/"test") draw different samples.
- ``MITBIH(root, split="DS1"|"DS2"|"train"|"test"|"all", records=None, pre_samples=90,
  post_samples=166, lead="MLII", normalize=True, test_fraction=0.2, seed=0)``: wfdb records
  ``root/<record>.dat/.hea/.atr``; a beat = samples [R - pre, R + post) around each annotated
  R peak, L = pre + post (256 at 360 Hz by default); x = that window of one lead (``lead``: a
  signal name or a channel index; z-scored per beat when ``normalize``). Labels are AAMI
  classes N, S, V, F, Q (`AAMI_CLASSES`, symbol map
  `AAMI_MAP`); annotations that are not beats are skipped by definition (rhythm, noise marks).
  "DS1"/"DS2" are de Chazal et al.'s (2004) inter-patient record lists (`DS1_RECORDS`,
  `DS2_RECORDS`); "train"/"test" a stratified random beat split of ``records`` (default DS1+DS2);
  "all" every beat of ``records``. ``ds.record_of`` (record name per beat), ``ds.fs``.
- ``SyntheticECG(n_records=4, duration_s=60, split="train", seed=0, fs=360,
  ectopic_fraction=0.2, pre_samples=90, post_samples=166, normalize=True, heart_rate_bpm=70)``:
  ECG simulated beat by beat with ECGSYN's wave shapes (our generator, `synthesize_ecg`), with
  premature beats (supraventricular "S": early, same QRS; ventricular "V":
  early, wide and tall, no P wave), segmented exactly like `MITBIH`; AAMI classes (F, Q absent).
  ``ds.write_wfdb(folder)`` writes its records as MIT-BIH-format files.
- ``SST2(root, split="train"|"dev", max_len=64, tokenizer=None, min_freq=1, max_vocab=None)``:
  ``root/train.tsv``, ``root/dev.tsv`` (GLUE: header ``sentence\\tlabel``). The `Tokenizer` is
  built from ``train.tsv`` only (also for "dev", unless one is passed); ``ds.tokenizer``,
  ``ds.lengths`` (int64 (N,), tokens before padding, at most max_len), ``ds.texts``.
  x = token ids, padded with ``Tokenizer.PAD`` (0) and truncated to ``max_len``; unknown
  words map to ``Tokenizer.UNK`` (1).
- ``SyntheticSentiment(n_samples=400, split="train", seed=0, max_len=16, tokenizer=None)``:
  template sentences with positive/negative words and negations; same interface as `SST2`.

Spike encoders (`evospike.datasets.encoders`; float32 tensors, time first, random ones seeded
by ``seed=`` or a ``torch.Generator``):

- ``rate_encode(x, n_steps, gain=1.0, method="bernoulli"|"poisson")`` -> ``[T, *x.shape]``;
- ``latency_encode(x in [0, 1], n_steps, threshold=0.0)`` -> ``[T, *x.shape]``, one spike at
  step ``round((1 - x) (T - 1))``;
- ``delta_encode(signal, threshold, time_dim=0)`` -> ``[T, *other_dims, 2]`` (up, down counts);
  ``delta_decode(spikes, threshold, initial)`` -> ``[T, *other_dims]``;
- ``tas_probabilities(embeddings [..., L, D], alpha=1.0, tau_window=1.0, offset=0.0,
  mode="token"|"feature")`` -> ``[..., L]`` (or ``[..., L, D]``), differentiable;
  ``tas_encode(embeddings, n_steps, ...)`` -> ``[T, ..., L]`` (or ``[T, ..., L, D]``).

Fixture writers for the real formats (tests, trying a pipeline without the data):
``tests/data_fixtures.py``: ``write_dvs_gesture``, ``write_mitbih``, ``write_sst2``.
"""

from evospike.datasets.base import LabelledDataset, Subset, stratified_split
from evospike.datasets.digits import Digits
from evospike.datasets.dvs import DVSGesture, SyntheticDVSGesture, events_to_frames
from evospike.datasets.ecg import (
    AAMI_CLASSES,
    AAMI_MAP,
    DS1_RECORDS,
    DS2_RECORDS,
    MITBIH,
    SyntheticECG,
)
from evospike.datasets.encoders import (
    delta_decode,
    delta_encode,
    latency_encode,
    rate_encode,
    tas_encode,
    tas_probabilities,
)
from evospike.datasets.text import SST2, SyntheticSentiment, Tokenizer

__all__ = [
    "LabelledDataset", "Subset", "stratified_split", "Digits", "DVSGesture",
    "SyntheticDVSGesture", "events_to_frames", "MITBIH", "SyntheticECG", "AAMI_CLASSES",
    "AAMI_MAP", "DS1_RECORDS", "DS2_RECORDS", "SST2", "SyntheticSentiment", "Tokenizer",
    "rate_encode", "latency_encode", "delta_encode", "delta_decode", "tas_probabilities",
    "tas_encode",
]
