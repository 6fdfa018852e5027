"""The Insight Engine: a web page (Dash/Plotly) to explore a run's results file, or to follow
a run as it progresses (``evospike insight RESULTS.h5``, ``evospike run MODEL --insight``).

Needs the ``insight`` extra (dash); `evospike.insight.data` works without it.
"""

from __future__ import annotations

from evospike.errors import EvoSpikeError


def require_dash() -> None:
    """One clear line when Dash is not installed, instead of an ImportError traceback."""
    try:
        import dash  # noqa: F401
    except ImportError:
        raise EvoSpikeError("the Insight page needs Dash: pip install 'evospike[insight]' "
                            "(or pip install dash)") from None
