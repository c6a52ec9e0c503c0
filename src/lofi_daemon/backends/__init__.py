"""Backends: one class per model family behind one small interface."""
