"""Compiled multi-step CPU kernel of the torch backend (C, built on first use, ctypes)."""
