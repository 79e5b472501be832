"""``rock-vec watch``: frames of chosen envs of a running pool, tiled into
a grid (``rock_vec.observe``: the watcher asks, the hosts render between
two steps), written to a GIF, PNG or MP4 or shown in a window.

The writers and the window are here with the command because each needs
something only ``watch`` needs: Pillow for GIF and PNG, ffmpeg on the PATH
for MP4, matplotlib and a display for ``--live``. Those (and rock_vec's
observe modules) are imported inside the functions that use them, so that
a missing one fails this command alone, with a message naming what to
install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

from .exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def watch_command(args, parser) -> int:
    """Runs ``rock-vec watch``: grabs grids for ``args.seconds``; returns the exit code."""
    from ..observe import monitor, tiles
    from ..observe.watch import FrameWatcher

    def usage(problem: str) -> int:
        parser.commands["watch"].print_usage(sys.stderr)
        print(f"rock-vec watch: error: {problem}", file=sys.stderr)
        return EXIT_USAGE

    kinds = (".gif", ".png", ".mp4")
    if not args.out and not args.live:
        return usage("say where the frames go: --out FILE (.gif, .png, .mp4) or --live")
    if args.out and not args.out.lower().endswith(kinds):
        return usage(f"--out {args.out}: write a .gif, .png or .mp4")
    try:
        write = _frame_writer(args.out, args.fps) if args.out else None
        show = _live_window() if args.live else None
    except RuntimeError as exc:
        print(f"rock-vec watch: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        entry = monitor.pool_entry(args.pool)
        envs = args.envs if args.envs is not None else list(range(min(4, entry["num_envs"])))
        watcher = FrameWatcher(entry, envs)
    except (ValueError, PermissionError) as exc:
        print(f"rock-vec watch: {exc}", file=sys.stderr)
        return EXIT_FAILED
    grids, said = 0, set()
    try:
        with watcher:
            print(f"watching envs {', '.join(map(str, envs))} of pool {entry['pool']} (learner "
                  f"{entry['learner_pid']}) for {args.seconds:g} s", file=sys.stderr)
            end = time.monotonic() + args.seconds
            while time.monotonic() < end:
                due = time.monotonic() + 1 / args.fps
                got = watcher.grab(timeout=min(5.0, max(0.5, end - time.monotonic())))
                for note in (g for g in got if isinstance(g, str)):
                    if note not in said:
                        said.add(note)
                        print(f"rock-vec watch: {note}", file=sys.stderr)
                if all(isinstance(g, str) for g in got):
                    if not os.path.exists(f"/proc/{entry['learner_pid']}"):
                        print("rock-vec watch: the learner has ended", file=sys.stderr)
                    break
                image = tiles.grid([None if isinstance(g, str) else g for g in got])
                grids += 1
                if write:
                    write(image)
                if show:
                    show(image)
                time.sleep(max(0.0, due - time.monotonic()))
    except KeyboardInterrupt:
        pass
    finally:
        if write:
            write(None)
    if not grids:
        print("rock-vec watch: no frames", file=sys.stderr)
        return EXIT_FAILED
    if args.out:
        print(f"{grids} grid{'s' if grids != 1 else ''} of {len(envs)} env{'s' if len(envs) != 1 else ''} "
              f"written to {args.out}")
    return EXIT_OK


def _frame_writer(path: str, fps: float):
    """``write(image)`` for each grid, then ``write(None)`` to finish the file.

    Raises:
        RuntimeError: what writing ``path`` needs is missing (Pillow, ffmpeg).
    """
    if path.lower().endswith(".mp4"):
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            raise RuntimeError("an .mp4 needs ffmpeg on the PATH; write a .gif instead")
        state: dict = {}

        def write_mp4(image) -> None:
            if image is None:
                if "proc" in state:
                    state["proc"].stdin.close()
                    state["proc"].wait()
                return
            if "proc" not in state:  # the first grid fixes the size
                h, w = image.shape[:2]
                state["size"] = (h, w)
                state["proc"] = subprocess.Popen(
                    [ffmpeg, "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                     "-r", f"{fps:g}", "-i", "-", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-pix_fmt", "yuv420p",
                     path], stdin=subprocess.PIPE)
            if image.shape[:2] == state["size"]:
                state["proc"].stdin.write(image.tobytes())

        return write_mp4
    try:
        from PIL import Image
    except ImportError:
        raise RuntimeError("a .gif or .png needs Pillow: pip install 'rock-vec[monitor]'") from None
    images: list = []
    last_only = path.lower().endswith(".png")

    def write_pil(image) -> None:
        if image is not None:
            if last_only:
                images.clear()
            images.append(Image.fromarray(image))
        elif images:
            images[0].save(path, save_all=not last_only, append_images=images[1:], duration=int(1000 / fps), loop=0)

    return write_pil


def _live_window():
    """``show(image)``: draws each grid in a matplotlib window.

    Raises:
        RuntimeError: no display, or no matplotlib.
    """
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        raise RuntimeError("--live needs a display (DISPLAY is not set): write the frames with --out FILE")
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("--live needs matplotlib: pip install 'rock-vec[bench]'") from None
    plt.ion()
    fig, ax = plt.subplots()
    ax.axis("off")
    shown: dict = {}

    def show(image) -> None:
        if "im" not in shown:
            shown["im"] = ax.imshow(image)
        else:
            shown["im"].set_data(image)
        fig.canvas.draw_idle()
        plt.pause(0.001)

    return show

