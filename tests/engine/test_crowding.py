"""The learner's view of its own other threads (rock_vec.engine.crowding),
measured on real threads of this process."""

import time

from busy_threads import Burner

from rock_vec.engine.crowding import HOLD, Crowding


def _sample_after(crowding: Crowding, seconds: float) -> bool:
    time.sleep(seconds)
    return crowding.sample()


def test_a_learner_alone_is_not_crowded():
    crowding = Crowding()
    assert not any(_sample_after(crowding, 0.005) for _ in range(20))


def test_another_busy_thread_crowds_the_learner_until_hold_quiet_commands_have_passed():
    crowding = Crowding()
    with Burner():
        assert _sample_after(crowding, 0.05)
    # The interval the burner stopped in may or may not count as crowded.
    quiet = [_sample_after(crowding, 0.001) for _ in range(HOLD + 8)]
    first_free = quiet.index(False)
    assert HOLD - 1 <= first_free <= HOLD and not any(quiet[first_free:]), quiet
