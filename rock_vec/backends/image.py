"""Building the docker backend's worker image (``rock-vec image build``).

The build context is launcher/Dockerfile, the installed rock_vec package
(its compiled core included) and wheels, made on this machine with pip, of
rock_vec's dependencies at the versions the learner runs and of the env
packages asked for. So the engine needs no registry and no network, and
the workers run what the learner runs. The base image must have the
learner's Python minor version (the compiled core is built for it):
launcher/make-base-image.sh makes Debian bookworm's, Python 3.11.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Callable, Sequence

from .docker import client, default_image

DEFAULT_BASE = "rock-vec-base:bookworm"
#: rock_vec's own dependencies, pinned at the learner's versions.
DEPENDENCIES = ("numpy", "gymnasium", "cffi", "cloudpickle")


def launcher_dir() -> Path:
    """The launcher/ folder of the rock_vec checkout this package runs from.

    Raises:
        RuntimeError: rock_vec was not installed from a checkout.
    """
    here = Path(__file__).resolve().parents[2] / "launcher"
    if not (here / "Dockerfile").is_file():
        raise RuntimeError(f"no launcher/Dockerfile next to this rock_vec ({here}): `rock-vec image build` runs "
                           "from a checkout of rock_vec (pip install -e .)")
    return here


def base_python(engine, base: str) -> str:
    """The Python version ``base`` runs, "3.11" (its container has no network)."""
    out = engine.containers.run(base, ["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                remove=True, network_mode="none")
    return out.decode().strip()


def build(env_packages: Sequence[str] = (), tag: str | None = None, base: str = DEFAULT_BASE,
          progress: Callable[[str], object] = print) -> str:
    """Builds the worker image; returns its tag.

    Raises:
        RuntimeError: no engine, no base image, a base with another Python
            minor version, or a failed pip or docker build (with its output).
    """
    tag = tag or default_image()
    engine = client()
    import docker  # client() said how to install it if missing
    try:
        engine.images.get(base)
    except docker.errors.ImageNotFound:
        raise RuntimeError(f"the Docker engine has no base image {base!r}: make one with "
                           f"`sudo {launcher_dir() / 'make-base-image.sh'} {base}` (no registry needed)") from None
    mine = "%d.%d" % sys.version_info[:2]
    theirs = base_python(engine, base)
    if theirs != mine:
        raise RuntimeError(f"{base} runs Python {theirs}, this learner {mine}: rock_vec's compiled core needs the "
                           "same minor version; give --base an image with Python " + mine)
    with tempfile.TemporaryDirectory(prefix="rock_vec-image-") as tmp:
        context = Path(tmp)
        shutil.copy(launcher_dir() / "Dockerfile", context / "Dockerfile")
        package = Path(__file__).resolve().parents[1]
        shutil.copytree(package, context / "rock_vec", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        pins = [f"{name}=={metadata.version(name)}" for name in DEPENDENCIES]
        progress(f"wheels for {', '.join(pins + list(env_packages))}")
        pip = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(context / "wheels"),
                              *pins, *env_packages], capture_output=True, text=True)
        if pip.returncode != 0:
            raise RuntimeError(f"pip wheel failed:\n{pip.stdout[-2000:]}{pip.stderr[-2000:]}")
        progress(f"docker build {tag} from {base}")
        try:
            _, logs = engine.images.build(path=str(context), tag=tag, buildargs={"BASE": base}, rm=True,
                                          network_mode="none")
        except docker.errors.BuildError as exc:
            lines = "".join(chunk.get("stream", "") for chunk in exc.build_log if isinstance(chunk, dict))
            raise RuntimeError(f"docker build failed: {exc}\n{lines[-3000:]}") from None
        for chunk in logs:
            if isinstance(chunk, dict) and "error" in chunk:
                raise RuntimeError(f"docker build failed: {json.dumps(chunk)}")
    return tag
