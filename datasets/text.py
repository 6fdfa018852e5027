"""Sentences: GLUE SST-2 TSV files, a synthetic sentiment corpus, and a word tokenizer built from
a training split (no download, no pretrained vocabulary)."""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from evospike.datasets.base import LabelledDataset, check_positive_int, check_split
from evospike.errors import EvoSpikeError, ValidationError

_TOKEN_RE = re.compile(r"n't|'\w+|\w+|[^\w\s]")
SENTIMENT_CLASSES = ("negative", "positive")


class Tokenizer:
    """Lower-case word tokenizer with a vocabulary counted on a training split.

    Words split on white space with punctuation and clitics ("'s", "n't") as their own tokens,
    which is how GLUE's SST-2 text is already written. Ids: ``PAD`` = 0, ``UNK`` = 1, then the
    words seen at least ``min_freq`` times, most frequent first (ties alphabetical), at most
    ``max_vocab`` entries in all.
    """

    PAD = 0
    UNK = 1
    SPECIALS = ("<pad>", "<unk>")

    def __init__(self, vocab: list[str]):
        if list(vocab[:2]) != list(self.SPECIALS):
            raise ValidationError("Tokenizer", "vocab", "vocab",
                                  f"must start with {list(self.SPECIALS)}", vocab[:2])
        if len(set(vocab)) != len(vocab):
            raise ValidationError("Tokenizer", "vocab", "vocab", "has duplicate entries")
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}

    @staticmethod
    def tokens(text: str) -> list[str]:
        return _TOKEN_RE.findall(text.lower())

    @classmethod
    def build(cls, texts, min_freq: int = 1, max_vocab: int | None = None) -> Tokenizer:
        """Count words over ``texts`` (the training split only) and keep the frequent ones."""
        min_freq = check_positive_int("Tokenizer", "min_freq", min_freq)
        if max_vocab is not None:
            max_vocab = check_positive_int("Tokenizer", "max_vocab", max_vocab, minimum=3)
        counts = Counter(tok for text in texts for tok in cls.tokens(text))
        words = sorted((w for w, c in counts.items() if c >= min_freq and w not in cls.SPECIALS),
                       key=lambda w: (-counts[w], w))
        vocab = list(cls.SPECIALS) + words
        if max_vocab is not None:
            vocab = vocab[:max_vocab]
        return cls(vocab)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str, max_len: int) -> tuple[np.ndarray, int]:
        """(ids int64 ``[max_len]``, length): the first ``max_len`` tokens, unknown words as
        ``UNK``, padded with ``PAD``; length = tokens kept (before padding)."""
        toks = self.tokens(text)[:max_len]
        ids = np.full(max_len, self.PAD, dtype=np.int64)
        ids[: len(toks)] = [self.index.get(t, self.UNK) for t in toks]
        return ids, len(toks)

    def decode(self, ids) -> str:
        """The words of ``ids`` up to the first ``PAD``."""
        words = []
        for i in np.asarray(ids).tolist():
            if i == self.PAD:
                break
            words.append(self.vocab[i] if 0 <= i < len(self.vocab) else self.SPECIALS[1])
        return " ".join(words)

    def to_dict(self) -> dict:
        return {"vocab": list(self.vocab)}

    @classmethod
    def from_dict(cls, data: dict) -> Tokenizer:
        return cls(list(data["vocab"]))


class _SentenceDataset(LabelledDataset):
    classes = SENTIMENT_CLASSES
    max_len: int
    tokenizer: Tokenizer
    texts: list[str]
    _ids: torch.Tensor
    lengths: np.ndarray

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (self.max_len,)

    @property
    def data(self) -> torch.Tensor:
        """All token ids at once, int64 ``[N, max_len]``."""
        return self._ids

    def _get(self, i: int) -> torch.Tensor:
        return self._ids[i]

    def _encode(self, texts: list[str], labels: list[int]) -> None:
        encoded = [self.tokenizer.encode(t, self.max_len) for t in texts]
        ids = np.stack([e[0] for e in encoded]) if encoded else np.zeros((0, self.max_len),
                                                                          np.int64)
        self._ids = torch.from_numpy(ids)
        self.lengths = np.asarray([e[1] for e in encoded], dtype=np.int64)
        self.texts = list(texts)
        self._labels = np.asarray(labels, dtype=np.int64)


def read_glue_tsv(path: Path) -> tuple[list[str], list[int]]:
    """Sentences and labels of a GLUE SST-2 ``train.tsv``/``dev.tsv`` (header
    ``sentence<TAB>label``, label 0 = negative, 1 = positive)."""
    if not path.exists():
        raise EvoSpikeError(f"SST-2: expected the GLUE file '{path}' (from GLUE's SST-2.zip: "
                            f"train.tsv, dev.tsv with header 'sentence<TAB>label'); "
                            f"it does not exist")
    texts, labels = [], []
    with open(path, encoding="utf-8", newline="") as handle:
        # SST-2 sentences contain quote characters that are text, not CSV quoting
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != ["sentence", "label"]:
            raise EvoSpikeError(f"SST-2: '{path}' line 1 must be the header "
                                f"'sentence<TAB>label' (got {header!r})")
        for lineno, row in enumerate(reader, start=2):
            if len(row) != 2:
                raise EvoSpikeError(f"SST-2: '{path}' line {lineno} has {len(row)} "
                                    f"tab-separated fields, expected 2 (sentence, label)")
            label = row[1].strip()
            if label not in ("0", "1"):
                raise EvoSpikeError(f"SST-2: '{path}' line {lineno}: label must be 0 or 1 "
                                    f"(got {label!r})")
            texts.append(row[0])
            labels.append(int(label))
    if not texts:
        raise EvoSpikeError(f"SST-2: '{path}' has a header but no sentences")
    return texts, labels


class SST2(_SentenceDataset):
    """GLUE SST-2 (binary sentiment) from ``root/train.tsv`` and ``root/dev.tsv``.

    x: int64 ``[max_len]`` token ids (padded with 0, truncated to ``max_len``); label 0 =
    negative, 1 = positive. The tokenizer is built from ``train.tsv`` alone (``min_freq``,
    ``max_vocab``), also when reading "dev", unless ``tokenizer`` is given (pass
    ``SST2(root, "train").tokenizer`` to share it). GLUE's ``test.tsv`` has no labels and is
    refused.
    """

    name = "SST-2 (GLUE)"
    synthetic = False

    def __init__(self, root: str | os.PathLike, split: str = "train", max_len: int = 64,
                 tokenizer: Tokenizer | None = None, min_freq: int = 1,
                 max_vocab: int | None = None):
        if split == "test":
            raise EvoSpikeError("SST-2: GLUE's test.tsv carries no labels; use split 'dev' "
                                "for evaluation")
        self.split = check_split("SST2", split, ("train", "dev"))
        self.max_len = check_positive_int("SST2", "max_len", max_len)
        self.root = Path(root)
        texts, labels = read_glue_tsv(self.root / f"{split}.tsv")
        if tokenizer is None:
            train_texts = texts if split == "train" else read_glue_tsv(self.root /
                                                                       "train.tsv")[0]
            tokenizer = Tokenizer.build(train_texts, min_freq=min_freq, max_vocab=max_vocab)
        self.tokenizer = tokenizer
        self._encode(texts, labels)


# ---------------------------------------------------------------------------- synthetic
_POSITIVE = ("good", "great", "wonderful", "charming", "moving", "brilliant", "delightful",
             "funny", "beautiful", "clever", "engaging", "superb")
_NEGATIVE = ("bad", "dull", "boring", "awful", "tedious", "clumsy", "lifeless", "bland",
             "annoying", "predictable", "painful", "messy")
_SUBJECTS = ("the film", "this movie", "the plot", "the acting", "the script", "the ending",
             "the cast", "the story", "the direction", "the soundtrack")
_INTENSIFIERS = ("", "", "very", "truly", "rather", "remarkably", "quite")
_FILLERS = ("", "", "overall", "honestly", "in the end", "frankly")


def synthesize_sentence(rng: np.random.Generator) -> tuple[str, int]:
    """One template sentence and its label: a subject, an optional negation, an optional
    intensifier and a positive or negative adjective (a negation flips the label), sometimes
    with a second clause of the same sentiment joined by "and" ("but" joins a contrasting one,
    and then the clause after "but" decides)."""
    def clause() -> tuple[str, int, bool]:
        positive = bool(rng.random() < 0.5)
        negated = bool(rng.random() < 0.25)
        adj = rng.choice(_POSITIVE if positive else _NEGATIVE)
        intens = rng.choice(_INTENSIFIERS)
        verb = "is not" if negated else "is"
        words = [rng.choice(_SUBJECTS), verb, intens, adj]
        return " ".join(w for w in words if w), int(positive != negated), negated

    first, label, _ = clause()
    filler = rng.choice(_FILLERS)
    if rng.random() < 0.3:
        second, label2, _ = clause()
        joiner = "and" if label2 == label else "but"
        text = f"{filler} , {first} {joiner} {second} ." if filler else \
            f"{first} {joiner} {second} ."
        label = label2
    else:
        text = f"{filler} , {first} ." if filler else f"{first} ."
    return text, label


class SyntheticSentiment(_SentenceDataset):
    """SYNTHETIC sentiment sentences (`synthesize_sentence`), with the interface of `SST2`:
    x int64 ``[max_len]`` ids, label 0 = negative, 1 = positive. The tokenizer is built from
    the synthetic "train" split with the same ``seed`` and ``n_samples`` unless one is given.
    Sentences are drawn from ``(seed, split)``."""

    name = "synthetic sentiment sentences"
    synthetic = True

    def __init__(self, n_samples: int = 400, split: str = "train", seed: int = 0,
                 max_len: int = 16, tokenizer: Tokenizer | None = None):
        self.split = check_split("SyntheticSentiment", split, ("train", "test"))
        self.n_samples = check_positive_int("SyntheticSentiment", "n_samples", n_samples)
        self.max_len = check_positive_int("SyntheticSentiment", "max_len", max_len)
        self.seed = int(seed)
        texts, labels = self._sentences(split)
        if tokenizer is None:
            train_texts = texts if split == "train" else self._sentences("train")[0]
            tokenizer = Tokenizer.build(train_texts)
        self.tokenizer = tokenizer
        self._encode(texts, labels)

    def _sentences(self, split: str) -> tuple[list[str], list[int]]:
        rng = np.random.default_rng([self.seed, 0 if split == "train" else 1])
        pairs = [synthesize_sentence(rng) for _ in range(self.n_samples)]
        return [p[0] for p in pairs], [p[1] for p in pairs]
