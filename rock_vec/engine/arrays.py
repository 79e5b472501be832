"""Results as torch or JAX arrays, and actions taken from them: the pool's
``array_backend`` option.

A pool's results are numpy arrays over its segment (``copy=False``) or
fresh copies of them (``copy=True``). Another backend gets the same arrays
through DLPack: on the CPU a torch tensor or a JAX array of a view shares
the segment's memory, and one of a copy shares the copy, so
``array_backend`` adds no copy of its own. The conversion is gymnasium's own
(``gymnasium.wrappers.array_conversion``, the one under its ``NumpyToTorch``
and ``ArrayConversion`` vector wrappers): observations, rewards, flags and
infos come back exactly as those wrappers would hand them over.

Actions and reset options may hold numpy, torch or JAX arrays (nested in
a Dict or Tuple too) whatever the backend; non-numpy arrays are read
through DLPack, on the CPU without a copy.

The GPU path (``device="cuda:N"``) is not built: its design is in
docs/architecture.md, and a device other than the CPU is refused by name.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

ARRAY_BACKENDS = ("numpy", "torch", "jax")
#: The extra that installs each backend's module and gymnasium's conversion.
EXTRAS = {"torch": "rock-vec[torch]", "jax": "rock-vec[jax]"}
_MODULES = {"torch": "torch", "jax": "jax.numpy"}


def check(array_backend: Any, device: Any) -> None:
    """Raises ValueError on a backend or device the pool cannot deliver to."""
    if array_backend not in ARRAY_BACKENDS:
        raise ValueError(f"array_backend must be one of {ARRAY_BACKENDS}, got {array_backend!r}")
    if device is not None and str(device) not in ("cpu", "cpu:0", "TFRT_CPU_0"):
        raise ValueError(
            f"device={str(device)!r}: rock_vec delivers results in host memory only; the GPU path "
            "(cudaHostRegister'd segment, copies on the learner's stream, CUDA IPC) is not built yet. "
            "Use device='cpu' (or None) and move the batch yourself")


class ArrayBackend:
    """Converts a pool's results to ``name``'s arrays (numpy: as they are)
    and any batch of actions to numpy.

    Raises:
        ValueError: see ``check``.
        ImportError: the backend's module, or gymnasium's array conversion,
            is missing, naming the extra to install.
    """

    def __init__(self, name: str = "numpy", device: Any = None):
        check(name, device)
        self.name, self.device = name, device
        self._to_numpy = None  # gymnasium's conversion, once a non-numpy action is seen
        if name == "numpy":
            self._xp = None
            return
        try:
            importlib.import_module(_MODULES[name])
            self._conversion = _conversion()
        except ImportError as exc:
            raise ImportError(f"array_backend={name!r} needs {(exc.name or _MODULES[name]).split('.')[0]}: "
                              f"pip install '{EXTRAS[name]}'") from exc
        from gymnasium.wrappers.array_conversion import module_name_to_namespace

        self._xp = module_name_to_namespace(_MODULES[name])

    def results(self, value: Any) -> Any:
        """``value`` (results or infos, nested) as this backend's arrays."""
        if self._xp is None:
            return value
        return self._conversion(value, xp=self._xp, device=self.device)

    def inputs(self, value: Any) -> Any:
        """A batch of actions, or reset options, as numpy arrays (numpy and
        plain data: as given), as gymnasium's ``ArrayConversion`` hands
        them to the env."""
        if isinstance(value, np.ndarray) or not _has_foreign_arrays(value):
            return value
        if self._to_numpy is None:
            from gymnasium.wrappers.array_conversion import module_name_to_namespace

            try:
                self._to_numpy = (_conversion(), module_name_to_namespace("numpy"))
            except ImportError as exc:
                raise ImportError(f"{type(value).__module__} arrays (actions, reset options) need gymnasium's array "
                                  f"conversion ({exc.name}): pip install 'rock-vec[torch]'") from exc
        convert, xp = self._to_numpy
        return convert(value, xp=xp, device=None)


def _conversion():
    """gymnasium's ``array_conversion`` (it needs array-api-compat)."""
    from gymnasium.wrappers.array_conversion import array_conversion

    return array_conversion


def _has_foreign_arrays(value: Any) -> bool:
    """Whether ``value`` holds an array of another library (torch, JAX, ...)."""
    if isinstance(value, np.ndarray):
        return False
    if hasattr(value, "__dlpack__"):
        return True
    if isinstance(value, dict):
        return any(_has_foreign_arrays(v) for v in value.values())
    if isinstance(value, (tuple, list)):
        return any(_has_foreign_arrays(v) for v in value)
    return False
