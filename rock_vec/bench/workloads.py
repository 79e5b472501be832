"""What the benchmarks vectorise: a *workload* is an env id, its kwargs and
what it stands for (``Workload``), and ``WORKLOADS`` names each one the
suites run.

Its own module because the runners, the timing, the groups and the suites
all take a workload, and it needs none of them: only the env ids of the
envs users name by module (``rock_vec.synthetic``, ``rock_vec.atari``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..atari import PIPELINE_MAKE_ID
from ..synthetic import SYNTHETIC_MAKE_ID


@dataclass(frozen=True)
class Workload:
    """An env id, its kwargs, and what it stands for."""

    name: str
    env_id: str
    kwargs: dict = field(default_factory=dict)
    description: str = ""
    #: EnvPool's id of the same env (None: EnvPool has none).
    envpool_id: str | None = None
    #: Modules the env needs (a group on it is skipped, with a note, without them).
    requires: tuple[str, ...] = ()


WORKLOADS: dict[str, Workload] = {w.name: w for w in (
    Workload("cartpole", "CartPole-v1", {},
             "CartPole-v1: 4 float32 obs, a step of a few microseconds; measures per-step overhead",
             envpool_id="CartPole-v1"),
    Workload("atari_like", SYNTHETIC_MAKE_ID, {"obs_shape": (84, 84, 4), "obs_dtype": "uint8"},
             "uint8 (84, 84, 4) frames (28 KiB), no step cost; measures moving Atari-sized observations"),
    Workload("image_f32", SYNTHETIC_MAKE_ID, {"obs_shape": (3, 224, 224), "obs_dtype": "float32"},
             "float32 (3, 224, 224) images (588 KiB), no step cost; measures bandwidth"),
    Workload("busy100", SYNTHETIC_MAKE_ID, {"obs_shape": (4,), "obs_dtype": "float32", "step_us": 100},
             "4 float32 obs, 100 us of busy CPU per step; measures parallel speed-up"),
    Workload("busy1000", SYNTHETIC_MAKE_ID, {"obs_shape": (4,), "obs_dtype": "float32", "step_us": 1000},
             "4 float32 obs, 1 ms of busy CPU per step: envs worth spreading over machines (the ray suite)"),
    Workload("jitter", SYNTHETIC_MAKE_ID, {"obs_shape": (4,), "obs_dtype": "float32", "step_us": 105,
                                            "jitter_us": 95},
             "4 float32 obs, busy CPU drawn uniformly in 10..200 us per step; measures waiting on stragglers"),
    Workload("cnn_step", SYNTHETIC_MAKE_ID, {"obs_shape": (84, 84, 4), "obs_dtype": "uint8", "step_us": 300},
             "uint8 (84, 84, 4) frames, 300 us of busy CPU per step: about what a Nature CNN forward costs "
             "per env here, for the overlap loop"),
    Workload("breakout", PIPELINE_MAKE_ID, {"game": "Breakout"},
             "ALE Breakout through AtariPreprocessing (frame skip 4, 84x84 grey) and FrameStackObservation(4): "
             "the pipeline users train on (needs ale-py and opencv)", requires=("ale_py", "cv2")),
)}


def workload_named(workload: str | Workload) -> Workload:
    if isinstance(workload, Workload):
        return workload
    try:
        return WORKLOADS[workload]
    except KeyError:
        raise ValueError(f"unknown workload {workload!r}; choose from {', '.join(WORKLOADS)}") from None
