"""``array_backend="torch" | "jax"``: results as gymnasium's own array
conversion wrappers hand them over, without a copy of their own; actions
given as torch or JAX arrays."""

from __future__ import annotations

import functools
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import SyncVectorEnv

import rock_vec
from rock_vec.segment import registry
from same import assert_same
from sample_envs import SpaceEnv

torch = pytest.importorskip("torch", reason="array_backend='torch' needs torch: pip install 'rock-vec[torch]'")
pytest.importorskip("array_api_compat",
                    reason="gymnasium's array conversion needs array-api-compat: pip install 'rock-vec[torch]'")
from gymnasium.wrappers.vector import ArrayConversion, NumpyToTorch  # noqa: E402  (needs array-api-compat)


SPACES = {
    "box": (spaces.Box(-1, 1, (3, 2), np.float32), spaces.Discrete(3)),
    "discrete": (spaces.Discrete(5), spaces.Box(-1, 1, (2,), np.float32)),
    "multi_discrete": (spaces.MultiDiscrete([3, 4]), spaces.MultiDiscrete([2, 2])),
    "multi_binary": (spaces.MultiBinary(4), spaces.MultiBinary(3)),
    "dict": (spaces.Dict({"pos": spaces.Box(-1, 1, (2,), np.float64), "id": spaces.Discrete(7)}),
             spaces.Dict({"move": spaces.Discrete(4), "force": spaces.Box(0, 1, (1,), np.float32)})),
    "tuple": (spaces.Tuple((spaces.Box(0, 255, (4,), np.uint8), spaces.MultiBinary(2))),
              spaces.Tuple((spaces.Discrete(2), spaces.Discrete(3)))),
}


def space_fns(obs_space, act_space, n=4, render_mode=None):
    return [functools.partial(SpaceEnv, obs_space, act_space, max_len=6, info_every=4, render_mode=render_mode)
            for _ in range(n)]


def lockstep(ours, ref, steps=40, seed=3, as_actions=lambda a: a):
    try:
        assert_same(ours.reset(seed=seed), ref.reset(seed=seed), "reset")
        ref.action_space.seed(seed)
        for t in range(steps):
            actions = ref.action_space.sample()
            assert_same(ours.step(as_actions(actions)), ref.step(actions), f"step {t}")
    finally:
        ours.close()
        ref.close()


@pytest.mark.parametrize("kind", list(SPACES))
def test_torch_results_equal_numpy_to_torch_of_sync_vector_env(kind):
    obs_space, act_space = SPACES[kind]
    ours = rock_vec.AsyncVectorEnv(space_fns(obs_space, act_space), array_backend="torch", learner_envs=1,
                                   num_workers=1)
    ref = NumpyToTorch(SyncVectorEnv(space_fns(obs_space, act_space)))
    lockstep(ours, ref)


def test_torch_results_on_cartpole_through_make_vec_with_autoreset():
    ours = rock_vec.make_vec("CartPole-v1", 4, array_backend="torch", device="cpu")
    ref = NumpyToTorch(SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 4), device="cpu")
    lockstep(ours, ref, steps=120)


def _address(array: np.ndarray) -> int:
    return array.__array_interface__["data"][0]


def _generation_of(envs, address: int) -> int | None:
    """The generation of the segment's observations that holds ``address`` (None: none)."""
    for g, io in enumerate(envs._io.obs.generations):
        array = io.arrays[0]
        if _address(array) <= address < _address(array) + array.nbytes:
            return g
    return None


def test_copy_false_tensors_are_the_segments_memory():
    views = rock_vec.make_vec("CartPole-v1", 4, array_backend="torch", copy=False)
    try:
        segment_obs = _address(views._io.obs.generations[0].arrays[0])
        obs, _ = views.reset(seed=0)
        assert obs.data_ptr() == segment_obs
        nxt, rew, term, trunc, _ = views.step(np.zeros(4, np.int64))
        assert nxt.data_ptr() == segment_obs and rew.data_ptr() == _address(views._io.rew)
        assert term.data_ptr() == _address(views._io.term) and trunc.data_ptr() == _address(views._io.trunc)
    finally:
        views.close()


def test_copy_true_tensors_are_lent_from_the_segment_and_never_written_while_held():
    envs = rock_vec.make_vec("CartPole-v1", 4, array_backend="torch")
    try:
        first, _ = envs.reset(seed=0)
        kept = first.clone()
        held = _generation_of(envs, first.data_ptr())
        assert held is not None  # lent: the segment's memory, not a copy
        seen = set()
        for t in range(30):
            obs, *_ = envs.step(np.full(4, t % 2, np.int64))
            seen.add(_generation_of(envs, obs.data_ptr()))
        assert torch.equal(first, kept)  # no step wrote the held generation
        assert held not in seen and None not in seen
        assert envs._io.obs.copied == 0
        del first  # let go: its generation is written again
        for t in range(3):
            obs, *_ = envs.step(np.full(4, t % 2, np.int64))
            seen.add(_generation_of(envs, obs.data_ptr()))
        assert held in seen
    finally:
        envs.close()


def test_a_view_kept_past_close_stays_readable():
    """The segment stays mapped while a tensor (through DLPack) holds it."""
    envs = rock_vec.make_vec("CartPole-v1", 4, array_backend="torch", copy=False)
    obs, _ = envs.reset(seed=1)
    before = obs.clone()
    envs.close()
    assert torch.equal(obs, before) and float(obs.sum()) == float(before.sum())


def test_actions_may_be_torch_or_jax_arrays_whatever_the_backend():
    ref = SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 4)
    ours = rock_vec.make_vec("CartPole-v1", 4)
    lockstep(ours, ref, steps=60, as_actions=torch.from_numpy)
    act = spaces.Dict({"move": spaces.Discrete(4), "force": spaces.Box(0, 1, (1,), np.float32)})
    ours = rock_vec.AsyncVectorEnv(space_fns(spaces.Discrete(5), act), array_backend="torch")
    ref = NumpyToTorch(SyncVectorEnv(space_fns(spaces.Discrete(5), act)))
    lockstep(ours, ref, as_actions=lambda a: {k: torch.from_numpy(v) for k, v in a.items()})


def test_the_jax_backend_in_a_process_of_its_own():
    """jax_cases.py, run by its own pytest: JAX starts threads, and the
    other tests here fork (gymnasium's AsyncVectorEnv, SB3, PufferLib),
    which is unsafe in a process with threads."""
    pytest.importorskip("jax", reason="array_backend='jax' needs jax: pip install 'rock-vec[jax]'")
    here = os.path.dirname(__file__)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           os.path.join(here, "jax_cases.py")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout, done.stdout[-2000:]


def test_send_and_recv_hand_back_tensors():
    envs = rock_vec.make_vec("CartPole-v1", 4, batch_size=2, array_backend="torch")
    try:
        envs.async_reset(seed=0)
        for _ in range(10):
            obs, rew, term, trunc, info = envs.recv()
            assert (obs.dtype, rew.dtype, term.dtype, trunc.dtype) == (torch.float32, torch.float64, torch.bool,
                                                                      torch.bool)
            assert obs.shape == (2, 4) and info["env_id"].dtype == torch.int32
            envs.send(torch.zeros(2, dtype=torch.int64), info["env_id"])
    finally:
        envs.close()


def test_bad_backends_and_devices_are_refused_before_anything_starts():
    before = {e["pool"] for e in registry.entries()}
    with pytest.raises(ValueError, match=r"array_backend must be one of \('numpy', 'torch', 'jax'\), got 'tf'"):
        rock_vec.make_vec("CartPole-v1", 2, array_backend="tf")
    with pytest.raises(ValueError, match=r"device='cuda:0': rock_vec delivers results in host memory only; the GPU "
                                         r"path .* is not built yet"):
        rock_vec.make_vec("CartPole-v1", 2, array_backend="torch", device="cuda:0")
    with pytest.raises(ValueError, match="SB3's VecEnv hands numpy arrays to SB3"):
        from rock_vec.sb3 import RockVecEnv

        RockVecEnv.from_id("CartPole-v1", 2, array_backend="torch")
    assert {e["pool"] for e in registry.entries()} == before


def test_a_missing_backend_names_the_extra_to_install():
    code = ("import sys; sys.modules['jax'] = None; sys.modules['jax.numpy'] = None\n"
            "import rock_vec\n"
            "try:\n"
            "    rock_vec.make_vec('CartPole-v1', 2, array_backend='jax')\n"
            "except ImportError as exc:\n"
            "    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "array_backend='jax' needs jax: pip install 'rock-vec[jax]'", done.stderr


def test_reset_options_may_hold_tensors_and_render_stays_numpy():
    """As gymnasium's ArrayConversion: options reach the envs as numpy (here
    echoed back in the reset info, as tensors again); render() is not
    converted."""
    fns = functools.partial(space_fns, render_mode="rgb_array")
    ours = rock_vec.AsyncVectorEnv(fns(SPACES["box"][0], SPACES["box"][1]), array_backend="torch", learner_envs=1,
                                   num_workers=1)
    ref = NumpyToTorch(SyncVectorEnv(fns(SPACES["box"][0], SPACES["box"][1])))
    try:
        options = {"goal": torch.tensor([1.5, -2.0]), "level": 3}
        got, want = ours.reset(seed=4, options=options), ref.reset(seed=4, options=options)
        assert_same(got, want, "reset with options")
        assert torch.equal(got[1]["options"]["goal"], torch.tensor([[1.5, -2.0]] * 4, dtype=torch.float32))
        ours.async_reset(seed=4, options=options)  # the EnvPool-style reset converts them too
        ours.recv()
        frames, ref_frames = ours.render(), ref.render()
        assert_same(frames, ref_frames, "render")
        assert type(frames) is tuple and all(type(f) is np.ndarray for f in frames)
    finally:
        ours.close()
        ref.close()
