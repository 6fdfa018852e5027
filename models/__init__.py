"""Reference networks and trainable models.

``build_reference(name, n_classes, sample_shape, extra, **options)`` builds one by the name a
training config uses (``model: {reference: <name>, ...options}``):

- ``digits_snn``: SNN for scikit-learn's digits (`evospike.models.digits`);
- ``dvs_conv``: convolutional SNN for DVS128 Gesture event frames (`evospike.models.dvs`);
- ``ecg_snn``: compact recurrent SNN for ECG beats, level-crossing input (`evospike.models.ecg`);
- ``sst2_transformer``: spiking Transformer with TAS encoding and ChronoSpikeAttention for
  SST-2 (`evospike.models.sst2`; torch only, not an IR network).
"""

from __future__ import annotations

from evospike.errors import ValidationError

REFERENCE_MODELS = ("digits_snn", "dvs_conv", "ecg_snn", "sst2_transformer")


def build_reference(name: str, n_classes: int, sample_shape, extra: dict | None = None,
                    **options):
    """The reference model ``name`` for a data set with ``n_classes`` and ``sample_shape``."""
    try:
        if name == "digits_snn":
            from evospike.models.digits import digits_snn

            return digits_snn(n_classes, sample_shape, **options)
        if name == "dvs_conv":
            from evospike.models.dvs import dvs_conv_snn

            return dvs_conv_snn(n_classes, sample_shape, **options)
        if name == "ecg_snn":
            from evospike.models.ecg import ecg_snn

            return ecg_snn(n_classes, sample_shape, **options)
        if name == "sst2_transformer":
            from evospike.models.sst2 import sst2_transformer

            return sst2_transformer(n_classes, sample_shape, extra, **options)
    except TypeError as exc:  # an option the model does not take
        raise ValidationError("model config", "model", f"options of '{name}'", str(exc),
                              sorted(options)) from None
    raise ValidationError("model config", "model", "reference",
                          f"must be one of {REFERENCE_MODELS}", name)


__all__ = ["build_reference", "REFERENCE_MODELS"]
