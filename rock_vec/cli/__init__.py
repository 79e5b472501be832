"""The ``rock-vec`` command (``main``).
"""
