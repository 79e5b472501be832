"""The bench command's text output: the progress bar (the tables are checked
through the command in test_bench_command.py)."""

import io

from rock_vec.cli.tables import ProgressBar


def test_the_progress_bar_redraws_one_line_and_prints_other_lines_above():
    stream = io.StringIO()
    bar = ProgressBar(stream)
    bar("skipping pufferlib: pufferlib is not installed")
    bar("[1/4] cartpole x4 rock_vec default: 60,000 steps/s (repeat 1/1)")
    bar("[2/4] cartpole x4 gym_sync: 50,000 steps/s (repeat 1/1)")
    bar("")
    text = stream.getvalue()
    assert text.startswith("skipping pufferlib: pufferlib is not installed\n")
    assert "[######..................] 1/4 cartpole x4 rock_vec default" in text
    assert "\r\033[K[############............] 2/4 cartpole x4 gym_sync" in text
    assert text.endswith("\r\033[K")  # cleared before the table prints
