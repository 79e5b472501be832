"""The ``rock-vec`` command: ``main`` parses and dispatches; each command
runs in a module of its own here (see ``main``'s docstring).
"""
