"""Placeholder-free interim: the native engine is not built yet, so every network says so."""

from __future__ import annotations


def native_unavailable_reason(cn) -> str | None:
    return "native kernel not built in this version"
