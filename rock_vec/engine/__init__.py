"""The learner's side of a pool: ``Pool`` starts the workers on a backend and
runs the protocol (``pool``); a face's session with it (``session``); where the
envs step (``split``); the options (``options``); async batches
(``batches``); results as numpy, torch or JAX arrays (``arrays``).
"""
