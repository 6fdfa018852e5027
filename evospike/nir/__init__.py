"""NIR import and export (docs/NIR.md): `load` reads a NIR file or graph into a `Network`,
`save` writes a network as NIR; both through the `nir` package's own reader and writer."""

from evospike.nir.conventions import PRESETS, Conventions, conventions_for
from evospike.nir.exporter import save, to_graph
from evospike.nir.importer import load, with_input_spikes
from evospike.nir.loihi import for_loihi

__all__ = ["load", "save", "to_graph", "with_input_spikes", "for_loihi", "Conventions",
           "conventions_for", "PRESETS"]
