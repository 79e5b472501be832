"""The shared segment, the lowest layer: its format (``layout``: every array,
declared in one place; ``actions``: how actions travel), the codec for
plain data, the mapping itself, and the host's listing of pools
(``registry``). Imports nothing of rock_vec but the C core (``rock_vec._core``).
"""
