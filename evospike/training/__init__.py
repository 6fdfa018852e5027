"""Surrogate-gradient training of networks that are IR networks."""
