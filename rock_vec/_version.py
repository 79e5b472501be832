"""The version of rock_vec: the worker image is tagged with it, and `rock-vec` reports it."""

__version__ = "0.1.0"
