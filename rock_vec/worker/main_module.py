"""The learner's main module, run in the workers as ``__mp_main__``.

A script's top level often registers envs (``gym.register_envs(ale_py)``)
or imports what its env constructors need. Python's spawn and forkserver
start methods make that work by running the parent's main module in every
child under the name ``__mp_main__``, so that the code under
``if __name__ == "__main__":`` does not run there; users know that rule.
rock_vec follows it: the learner writes which module or file is its main
(``describe``) into the pool's manifest, and the fork server runs it once
before forking workers (a spawned worker runs it itself), through
multiprocessing's own ``spawn.prepare``, with the learner's ``sys.argv``.

A script without the guard creates its pool at the top level. Run in a
worker, that line stops the run (``UnguardedPool``): what came before it
(imports, registrations) is kept, nothing after it runs, and the learner is
told once, with a warning. A main that fails to run is reported the same way
rather than failing the pool, since a pool whose env constructors need
nothing from it works without it.
"""

from __future__ import annotations

import multiprocessing.process
import os
import sys

#: True while this process runs the learner's main module.
running = False
_ran = False
_notice: str | None = None


class UnguardedPool(BaseException):
    """The main module, run in a worker, creates a pool at its top level.

    A BaseException, so a script's ``except Exception`` around the pool's
    creation does not go on with the rest of the script in the worker."""


def describe() -> dict | None:
    """The learner's main module as ``spawn.prepare`` takes it (by module
    name when run with ``-m``, else by file), with ``sys.argv``; None for an
    interactive session, ``python -c`` or a script read from stdin."""
    main = sys.modules.get("__main__")
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if name is not None:
        return {"init_main_from_name": name, "sys_argv": list(sys.argv)}
    path = getattr(main, "__file__", None)
    if path is None:
        return None
    if not os.path.isabs(path):
        path = os.path.join(multiprocessing.process.ORIGINAL_DIR or os.getcwd(), path)
    if not os.path.isfile(path):  # "<stdin>", a script deleted since: nothing a worker could run
        return None
    return {"init_main_from_path": os.path.normpath(path), "sys_argv": list(sys.argv)}


def run(spec: dict | None) -> str | None:
    """Runs the learner's main module as ``__mp_main__`` once in this
    process (later calls do nothing). Returns a notice for the learner when
    the run stopped early, else None."""
    global running, _ran, _notice
    if _ran or not spec:
        return _notice
    _ran = True
    what = spec.get("init_main_from_name") or spec.get("init_main_from_path")
    import multiprocessing.spawn  # only where a main module runs: the learner never needs it

    running = True
    try:
        multiprocessing.spawn.prepare({key: spec[key] for key in
                                       ("sys_argv", "init_main_from_name", "init_main_from_path") if key in spec})
    except UnguardedPool as stop:
        _notice = (
            f"rock_vec's workers run your main module {what} as __mp_main__ (the rule of multiprocessing's spawn), "
            f"and it creates a pool at its top level ({stop}): the workers ran it up to that line. Put the code "
            "that creates the pool and trains under `if __name__ == \"__main__\":` so that workers run only the "
            "imports and registrations.")
    except BaseException as exc:  # noqa: BLE001 - a failed main is reported, the pool may not need it
        _notice = (f"rock_vec's workers could not run your main module {what} as __mp_main__ (the rule of "
                   f"multiprocessing's spawn): {type(exc).__name__}: {exc}. Whatever its top level registers "
                   "may be missing in the workers.")
    finally:
        running = False
    return _notice


def check_not_running() -> None:
    """Called where a pool is created: stops a worker's run of the main
    module there (see ``UnguardedPool``)."""
    if not running:
        return
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") != "__mp_main__":
        frame = frame.f_back
    raise UnguardedPool(f"line {frame.f_lineno}" if frame is not None else "at its top level")
