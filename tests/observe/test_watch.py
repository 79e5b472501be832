"""``rock-vec watch``: frames rendered where each env steps, passed through
the segment to another process, while the pool trains on."""

import subprocess
import sys
import threading

import gymnasium as gym
import numpy as np
import pytest

import rock_vec
from rock_vec.observe.tiles import grid
from rock_vec.observe.watch import FrameWatcher
from rock_vec.segment.layout import FRAME_BYTES, TEXT_BYTES, FRAME_OK, FRAME_SLOTS
from rock_vec.worker.frames import FrameServer
from rock_vec.segment import registry
from rock_vec.synthetic import SYNTHETIC_MAKE_ID


def entry_of(envs):
    (entry,) = [e for e in registry.entries() if e["pool"] == envs._pool.id]
    return entry


class Stepping:
    """Steps ``envs`` in a thread, as a training loop would, until stopped."""

    def __init__(self, envs, actions):
        self.envs, self.actions, self.steps, self.error = envs, actions, 0, None
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            while not self.halt.is_set():
                self.envs.step(self.actions)
                self.steps += 1
        except Exception as exc:  # reported by stop()
            self.error = exc

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.halt.set()
        self.thread.join(10)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error


def synthetic_pool(num_envs=6, **options):
    return rock_vec.make_vec(SYNTHETIC_MAKE_ID, num_envs, render_mode="rgb_array", episode_len=10_000,
                             learner_envs=2, envs_per_worker=2, **options)


def test_each_frame_is_the_watched_envs_own_at_its_current_step():
    """Envs of the learner's share and of two workers; a frame's green
    channel is its env's seed, its red channel the env's step count."""
    envs = synthetic_pool()
    try:
        envs.reset(seed=100)  # env i: seed 100 + i
        assert envs.split.learner_envs == 2 and envs.num_workers == 2
        with Stepping(envs, np.zeros(6, np.int64)) as loop:
            with FrameWatcher(entry_of(envs), [0, 3, 5]) as watcher:
                seen = [watcher.grab(timeout=5.0) for _ in range(5)]
            assert loop.steps > 0
        for grabbed in seen:
            for env, frame in zip([0, 3, 5], grabbed):
                assert isinstance(frame, np.ndarray), frame
                assert frame.shape == (24, 32, 3) and frame.dtype == np.uint8
                assert (frame[..., 1] == 100 + env).all() and (frame[..., 2] == 200).all()
        counts = [[int(f[0, 0, 0]) for f in grabbed] for grabbed in seen]
        for env in range(3):  # steps go on between grabs (mod 256)
            steps = [c[env] for c in counts]
            assert len(set(steps)) > 1
        envs.step(np.zeros(6, np.int64))  # still a working pool
    finally:
        envs.close()


def test_async_batches_answer_too():
    envs = synthetic_pool(batch_size=2)
    try:
        envs.async_reset(seed=7)
        stop = threading.Event()

        def loop():
            while not stop.is_set():
                *_, info = envs.recv()
                envs.send(np.zeros(2, np.int64), info["env_id"])

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            with FrameWatcher(entry_of(envs), [1, 4]) as watcher:
                one, four = watcher.grab(timeout=5.0)
        finally:
            stop.set()
            thread.join(10)
        assert (one[..., 1] == 8).all() and (four[..., 1] == 11).all()
    finally:
        envs.close()


def test_an_env_without_rgb_array_gets_a_message_and_the_pool_goes_on():
    envs = rock_vec.make_vec("CartPole-v1", 4, learner_envs=0, num_workers=2)
    try:
        envs.reset(seed=0)
        with Stepping(envs, np.zeros(4, np.int64)):
            with FrameWatcher(entry_of(envs), [2]) as watcher:
                (note,) = watcher.grab(timeout=5.0)
        assert note == ("env 2 renders in mode None, not 'rgb_array': build the pool with "
                        "render_mode='rgb_array' to watch it")
    finally:
        envs.close()


def test_a_pool_that_is_not_stepped_gives_a_message_not_a_hang():
    envs = synthetic_pool()
    try:
        envs.reset(seed=0)
        with FrameWatcher(entry_of(envs), [4]) as watcher:
            (note,) = watcher.grab(timeout=0.3)
        assert note == "env 4: no frame within 0.3 s (is the learner stepping the pool?)"
    finally:
        envs.close()


def test_a_malformed_slot_is_refused_by_the_watcher():
    """What a host writes is checked: a shape that overruns the slot, or
    not RGB, reads as a message."""
    envs = synthetic_pool()
    try:
        envs.reset(seed=0)
        with Stepping(envs, np.zeros(6, np.int64)):
            with FrameWatcher(entry_of(envs), [0]) as watcher:
                assert isinstance(watcher.grab()[0], np.ndarray)
        with FrameWatcher(entry_of(envs), [0]) as watcher:
            watcher.asked[0] += 1
            watcher.done[0] = watcher.asked[0]  # as if its host had answered
            watcher.status[0] = FRAME_OK
            for shape in [(4096, 4096, 3), (24, 32, 4), (0, 32, 3)]:
                watcher.shape[0] = shape
                assert watcher._read(0, 1.0) == f"env 0: its host wrote a malformed frame shape {shape}"
    finally:
        envs.close()


def test_bad_requests_are_refused_naming_the_problem():
    envs = synthetic_pool()
    try:
        entry = entry_of(envs)
        with pytest.raises(ValueError, match="env index 6 is out of range: pool .* has 6 envs"):
            FrameWatcher(entry, [0, 6])
        with pytest.raises(ValueError, match=f"watch 1 to {FRAME_SLOTS} envs at once, got 17"):
            FrameWatcher(entry, list(range(17)))
        with FrameWatcher(entry, [0]):
            with pytest.raises(ValueError, match="another rock-vec watch is attached to pool"):
                FrameWatcher(entry, [1])
        FrameWatcher(entry, [1]).close()  # the first one let go
    finally:
        envs.close()


def test_frames_larger_than_a_slot_are_subsampled(monkeypatch):
    desk = FrameServer({name: np.zeros(**spec) for name, spec in {
        "w.generation": {"shape": (1,), "dtype": np.uint32}, "w.want": {"shape": (FRAME_SLOTS,), "dtype": np.uint32},
        "w.asked": {"shape": (FRAME_SLOTS,), "dtype": np.uint32},
        "w.done": {"shape": (FRAME_SLOTS,), "dtype": np.uint32},
        "w.status": {"shape": (FRAME_SLOTS,), "dtype": np.uint32},
        "w.shape": {"shape": (FRAME_SLOTS, 3), "dtype": np.uint32},
        "w.note": {"shape": (FRAME_SLOTS, TEXT_BYTES), "dtype": np.uint8},
        "w.frame": {"shape": (FRAME_SLOTS, FRAME_BYTES), "dtype": np.uint8}}.items()}, 0, 1)

    class Big:
        render_mode = "rgb_array"

        def render(self):
            frame = np.zeros((1200, 1000, 3), np.uint8)  # 3.6 MB
            frame[::2, ::2] = 255
            return frame

    desk.want[0], desk.asked[0], desk.generation[0] = 1, 1, 1
    assert desk.pending()
    desk.serve([Big()])
    assert desk.done[0] == 1 and desk.status[0] == FRAME_OK and not desk.pending()
    h, w, c = desk.shape[0]
    assert (h, w, c) == (600, 500, 3)  # every 2nd pixel: the first stride that fits
    assert (desk.frame[0, : h * w * c] == 255).all()


def test_grid_tiles_frames_row_major_centred():
    a = np.full((2, 3, 3), 10, np.uint8)
    b = np.full((4, 2, 3), 20, np.uint8)
    g = grid([a, b, None], gap=1)
    assert g.shape == (4 * 2 + 1, 3 * 2 + 1, 3)  # 2 columns of 3-wide tiles, 2 rows of 4-high tiles
    assert (g[1:3, 0:3] == 10).all() and (g[0:4, 4:6] == 20).all() and (g[5:9, 0:3] == 32).all()


def run_watch(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "rock_vec.cli", "watch", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_the_command_writes_an_exact_png_and_an_animated_gif(tmp_path):
    from PIL import Image

    envs = synthetic_pool()
    try:
        envs.reset(seed=40)
        with Stepping(envs, np.zeros(6, np.int64)):
            png = run_watch(envs._pool.id, "--envs", "1,2,5", "--out", str(tmp_path / "w.png"), "--seconds", "0.5")
            gif = run_watch(envs._pool.id, "--envs", "0,3", "--out", str(tmp_path / "w.gif"), "--seconds", "1",
                            "--fps", "10")
        assert png.returncode == 0, png.stderr
        assert png.stdout.endswith(f"of 3 envs written to {tmp_path / 'w.png'}\n")
        image = np.asarray(Image.open(tmp_path / "w.png").convert("RGB"))
        assert image.shape == (24 * 2 + 4, 32 * 2 + 4, 3)  # 2 x 2 tiles, the 4th blank
        for k, env in enumerate([1, 2, 5]):
            y, x = (k // 2) * 28, (k % 2) * 36
            assert (image[y:y + 24, x:x + 32, 1] == 40 + env).all()
        assert (image[28:, 36:] == 32).all()
        assert gif.returncode == 0, gif.stderr
        with Image.open(tmp_path / "w.gif") as anim:
            assert anim.size == (32 * 2 + 4, 24) and anim.n_frames >= 3
    finally:
        envs.close()


def test_the_command_shows_a_real_envs_frames(tmp_path):
    """CartPole's own rgb_array render (pygame), on a worker."""
    pytest.importorskip("pygame", reason="CartPole's render needs pygame (pip install 'gymnasium[classic-control]')")
    from PIL import Image

    envs = rock_vec.make_vec("CartPole-v1", 2, render_mode="rgb_array", learner_envs=0, num_workers=1)
    ref = gym.make("CartPole-v1", render_mode="rgb_array")
    try:
        envs.reset(seed=0)
        ref.reset(seed=0)
        with Stepping(envs, np.zeros(2, np.int64)):
            done = run_watch(envs._pool.id, "--envs", "1", "--out", str(tmp_path / "cart.png"), "--seconds", "0.3")
        assert done.returncode == 0, done.stderr
        image = np.asarray(Image.open(tmp_path / "cart.png").convert("RGB"))
        assert image.shape == ref.render().shape == (400, 600, 3)
        assert (image == 255).mean() > 0.5 and (image != 255).any()  # a white scene with the cart drawn
    finally:
        envs.close()
        ref.close()


def test_the_command_says_what_is_wrong():
    missing = run_watch("--seconds", "1")
    assert missing.returncode == 2 and "say where the frames go: --out FILE (.gif, .png, .mp4) or --live" in missing.stderr
    kind = run_watch("--out", "x.avi")
    assert kind.returncode == 2 and "--out x.avi: write a .gif, .png or .mp4" in kind.stderr
    envs = rock_vec.make_vec("CartPole-v1", 2, learner_envs=0, num_workers=1)
    try:
        envs.reset(seed=0)
        with Stepping(envs, np.zeros(2, np.int64)):
            refused = run_watch(envs._pool.id, "--out", "/tmp/never.gif", "--seconds", "0.5")
        assert refused.returncode == 1
        assert "rock-vec watch: env 0 renders in mode None, not 'rgb_array'" in refused.stderr
        assert "rock-vec watch: no frames" in refused.stderr
        gone = run_watch("nosuchpool", "--out", "/tmp/never.gif")
        assert gone.returncode == 1 and "no running rock_vec pool matches 'nosuchpool'" in gone.stderr
    finally:
        envs.close()


def test_the_command_writes_an_mp4_through_ffmpeg(tmp_path):
    import shutil

    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        pytest.skip("an .mp4 needs ffmpeg and ffprobe on the PATH (apt-get install ffmpeg)")
    envs = synthetic_pool()
    try:
        envs.reset(seed=0)
        with Stepping(envs, np.zeros(6, np.int64)):
            done = run_watch(envs._pool.id, "--envs", "0,1", "--out", str(tmp_path / "w.mp4"), "--seconds", "1",
                             "--fps", "10")
        assert done.returncode == 0, done.stderr
        grids = int(done.stdout.split()[0])
        probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                                "stream=width,height,nb_read_frames", "-of", "csv=p=0", str(tmp_path / "w.mp4")],
                               capture_output=True, text=True, timeout=60)
        width, height, frames_read = (int(x) for x in probe.stdout.strip().split(","))
        assert (width, height) == (32 * 2 + 4, 24)  # two tiles side by side, already even
        assert frames_read == grids >= 3
    finally:
        envs.close()
