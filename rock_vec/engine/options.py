"""rock_vec's own options of a pool, in one place: every face takes them by
keyword and builds one ``PoolOptions``, validated once; everything below
the faces reads that object.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from . import arrays

WAIT_POLICIES = ("auto", "spin", "block")
FAILURE_POLICIES = ("raise", "restart")
CONTEXTS = (None, "fork", "forkserver", "spawn")
BACKENDS = ("forkserver", "spawn", "docker")


def check_int(name: str, value: Any, minimum: int = 1, *, below: tuple[str, int] | None = None,
              optional: bool = True, why: str = "") -> None:
    """Raises ValueError naming ``name`` (and ``why`` the bounds are what
    they are) unless ``value`` is an int (a numpy int too, never a bool) >=
    ``minimum`` and, given ``below`` (its name and value), under it; None
    passes when ``optional``."""
    if value is None and optional:
        return
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= minimum \
            and (below is None or value < below[1]):
        return
    more = f"an int >= {minimum}" if below is None else f"an int in [{minimum}, {below[0]}={below[1]})"
    raise ValueError(f"{name} must be {more}" + (" or None" if optional else "") + f", got {value!r}"
                     + (f": {why}" if why else ""))


@dataclasses.dataclass(frozen=True, kw_only=True)
class PoolOptions:
    """How a pool runs its envs (see README.md's table).

    Attributes:
        envs_per_worker, num_workers: the worker layout (default: one
            worker per usable CPU but one, see ``rock_vec.engine.split``).
        learner_envs: envs stepped in the learner's process (None: chosen;
            0: every env in a worker process).
        wait_policy: 'auto', 'spin' or 'block'.
        on_worker_failure: 'raise' or 'restart'.
        max_restarts: restarts per worker before a crash loop raises.
        info_bytes: room for one env's info of one step.
        start_timeout: seconds for every worker to build its envs.
        batch_size: rows per ``recv`` in the async API (None: num_envs).
        context: gymnasium's start-method argument: 'spawn' starts workers
            as fresh interpreters; None, 'fork', 'forkserver' fork them from
            rock_vec's fork server.
        backend: where workers run (``rock_vec.backends``): 'forkserver',
            'spawn' or 'docker'; None: what ``context`` says.
        image: the docker backend's worker image (None: ``rock-vec image
            build``'s default tag).
        memory_limit: the docker backend's memory limit per container
            ("512m"; None: none).
        placement: "numa" pins each worker to whole cores of one NUMA node,
            its memory bound there, the learner's first core kept free
            (``rock_vec.placement.plan``); None: the OS places them.
        gpu: the learner's GPU (index, UUID or PCI bus id): workers go to
            its NUMA node (placement "numa" by default), and containers get
            it as a device.
        cpus: the CPUs the pool may use, its learner share included: a
            count (it sizes the split and the spinning and pins nothing;
            what Ray grants an actor) or CPU ids (workers run only on those;
            placement "numa" plans within them). None: every CPU this
            process may run on.
        array_backend: 'numpy', 'torch' or 'jax': the arrays results come
            back as (``rock_vec.engine.arrays``; torch and JAX through DLPack, no
            copy added).
        device: where results go: None or 'cpu' (the GPU path is not built).

    Raises:
        ValueError: naming the option and what it takes.
    """

    envs_per_worker: int | None = None
    num_workers: int | None = None
    learner_envs: int | None = None
    wait_policy: str = "auto"
    on_worker_failure: str = "raise"
    max_restarts: int = 3
    info_bytes: int = 4096
    start_timeout: float = 120.0
    batch_size: int | None = None
    context: str | None = None
    backend: str | None = None
    image: str | None = None
    memory_limit: str | None = None
    placement: str | None = None
    gpu: int | str | None = None
    cpus: int | tuple[int, ...] | None = None
    array_backend: str = "numpy"
    device: Any = None

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # a numpy int is an int to users; the manifest (JSON) wants Python's
            value = getattr(self, f.name)
            if isinstance(value, np.integer):
                object.__setattr__(self, f.name, int(value))
        check_int("envs_per_worker", self.envs_per_worker)
        check_int("num_workers", self.num_workers)
        check_int("learner_envs", self.learner_envs, minimum=0)
        if self.wait_policy not in WAIT_POLICIES:
            raise ValueError(f"wait_policy must be one of {WAIT_POLICIES}, got {self.wait_policy!r}")
        if self.on_worker_failure not in FAILURE_POLICIES:
            raise ValueError(f"on_worker_failure must be one of {FAILURE_POLICIES}, got {self.on_worker_failure!r}")
        check_int("max_restarts", self.max_restarts, minimum=0, optional=False)
        check_int("info_bytes", self.info_bytes, minimum=64, optional=False)
        if not isinstance(self.start_timeout, (int, float)) or isinstance(self.start_timeout, bool) \
                or not self.start_timeout > 0:
            raise ValueError(f"start_timeout must be a number of seconds > 0, got {self.start_timeout!r}")
        check_int("batch_size", self.batch_size)
        if self.context not in CONTEXTS:
            raise ValueError(f"cannot find context for {self.context!r}")  # multiprocessing's words
        if self.backend is not None and self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        for name in ("image", "memory_limit"):
            if getattr(self, name) is not None and self.backend != "docker":
                raise ValueError(f"{name} applies to backend='docker' only")
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a str, got {getattr(self, name)!r}")
        if self.placement not in (None, "numa"):
            raise ValueError(f"placement must be 'numa' or None, got {self.placement!r}")
        if self.gpu is not None and (isinstance(self.gpu, bool) or not isinstance(self.gpu, (int, str))):
            raise ValueError(f"gpu must be a GPU index, UUID or PCI bus id, got {self.gpu!r}")
        if self.cpus is not None and not isinstance(self.cpus, int):
            try:
                ids = tuple(sorted(set(self.cpus)))
            except TypeError:
                raise ValueError(f"cpus must be a count or CPU ids, got {self.cpus!r}") from None
            if not ids or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in ids):
                raise ValueError(f"cpus must be a count or CPU ids (ints >= 0), got {self.cpus!r}")
            object.__setattr__(self, "cpus", ids)
        else:
            check_int("cpus", self.cpus)
        arrays.check(self.array_backend, self.device)
        if self.backend is not None and self.context is not None and self.backend != self.backend_name:
            raise ValueError(f"context={self.context!r} asks for the {self.backend_name!r} backend, "
                             f"not backend={self.backend!r}: give one of them")

    @property
    def backend_name(self) -> str:
        """The backend that runs the workers."""
        if self.backend is not None and self.context is None:
            return self.backend
        return "spawn" if self.context == "spawn" else "forkserver"

    @property
    def cpu_ids(self) -> tuple[int, ...] | None:
        """The CPU ids given as ``cpus``, or None (a count or nothing given)."""
        return self.cpus if isinstance(self.cpus, tuple) else None

    def numpy_only(self, face: str, why: str) -> "PoolOptions":
        """These options, unless they ask for tensors or a device, which
        ``face`` does not hand over (``why``).

        Raises:
            ValueError: naming ``face`` and ``why``.
        """
        if self.array_backend != "numpy" or self.device is not None:
            raise ValueError(f"{why}: array_backend and device apply to make_vec and AsyncVectorEnv, not to {face}")
        return self

    @classmethod
    def names(cls) -> set[str]:
        """Every option's name."""
        return {f.name for f in dataclasses.fields(cls)}

    @classmethod
    def take(cls, kwargs: dict) -> tuple["PoolOptions", dict]:
        """Splits ``kwargs`` into the options and the rest (``make_vec``'s env kwargs)."""
        names = cls.names()
        return cls(**{k: kwargs[k] for k in kwargs if k in names}), {k: v for k, v in kwargs.items() if k not in names}

    @classmethod
    def of(cls, kwargs: dict, where: str) -> "PoolOptions":
        """The options in ``kwargs``.

        Raises:
            TypeError: for a keyword that is not an option, naming the valid ones.
        """
        options, rest = cls.take(kwargs)
        if rest:
            valid = ", ".join(f.name for f in dataclasses.fields(cls))
            raise TypeError(f"{where} got an unexpected keyword argument {next(iter(rest))!r}; rock_vec's options "
                            f"are {valid}")
        return options
