"""The conformance harness of `tests/conftest.py`: a backend's declared gaps skip the tests
that need them (with the reason), and a skip keyed on an undeclared feature is an error."""

import pytest

from evospike import LIF, Network
from tests.conftest import BACKENDS, FEATURES, UNSUPPORTED, require, run_on


def test_declared_gaps_skip_with_their_reason():
    with pytest.raises(pytest.skip.Exception, match="brian2 does not support float32: Brian2"):
        require("brian2", "float32")
    with pytest.raises(pytest.skip.Exception, match="no fixed-point"):
        require("brian2", "fixed")
    for backend in BACKENDS:
        for feature in FEATURES:
            if feature not in UNSUPPORTED.get(backend, {}):
                assert require(backend, feature) is None


def test_unknown_feature_or_backend_is_an_error():
    with pytest.raises(ValueError, match="unknown feature 'plasticity'"):
        require("brian2", "plasticity")
    with pytest.raises(ValueError, match="unknown backend 'nest'"):
        require("nest", "float64")


def test_fixed_point_on_brian2_is_skipped_not_run_in_float64():
    net = Network("one", dt_ms=0.1)
    net.population("p", 1, LIF())
    with pytest.raises(pytest.skip.Exception, match="fixed"):
        run_on("brian2", net, 1.0, precision="fixed")
