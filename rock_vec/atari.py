"""The Atari pipeline users train on, registered for benchmarks:
``rock_vec/AtariPipeline-v0`` is ALE's game with frameskip 1, gymnasium's
``AtariPreprocessing`` (frame skip 4, 84x84 grey, noop resets) and
``FrameStackObservation(4)``: (4, 84, 84) uint8 observations.

    gym.make("rock_vec.atari:rock_vec/AtariPipeline-v0", game="Breakout")

Needs ale-py and OpenCV (``pip install ale-py opencv-python-headless``).
"""

from __future__ import annotations

import gymnasium as gym

PIPELINE_ID = "rock_vec/AtariPipeline-v0"
PIPELINE_MAKE_ID = f"{__name__}:{PIPELINE_ID}"


def make_pipeline(game: str = "Breakout", frame_skip: int = 4, stack: int = 4, **kwargs) -> gym.Env:
    import ale_py
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    gym.register_envs(ale_py)
    env = gym.make(f"ALE/{game}-v5", frameskip=1, **kwargs)
    return FrameStackObservation(AtariPreprocessing(env, frame_skip=frame_skip, screen_size=84, grayscale_obs=True),
                                 stack)


if PIPELINE_ID not in gym.envs.registry:
    gym.register(id=PIPELINE_ID, entry_point=f"{__name__}:make_pipeline")
