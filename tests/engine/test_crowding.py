"""The learner's view of its own other threads (rock_vec.engine.crowding),
measured on real threads of this process."""

import time

from busy_threads import Burner

from rock_vec.engine.crowding import EVERY, HOLD, Crowding


def _sample_after(crowding: Crowding, seconds: float) -> bool:
    time.sleep(seconds)
    return crowding.sample()


def _reading_after(crowding: Crowding, seconds: float) -> bool:
    """The commands up to the next reading of the clocks, ``seconds`` apart in all."""
    return [_sample_after(crowding, seconds / EVERY) for _ in range(EVERY)][-1]


def test_a_learner_alone_is_not_crowded():
    crowding = Crowding()
    assert not any(_sample_after(crowding, 0.001) for _ in range(20 * EVERY))


def test_another_busy_thread_crowds_the_learner_until_hold_quiet_commands_have_passed():
    crowding = Crowding()
    with Burner():
        assert _reading_after(crowding, 0.05)
    # The reading whose interval the burner stopped in may or may not count as crowded.
    quiet = [_sample_after(crowding, 0.001) for _ in range(HOLD + 2 * EVERY)]
    first_free = quiet.index(False)
    assert HOLD - 1 <= first_free <= HOLD + EVERY and not any(quiet[first_free:]), quiet
