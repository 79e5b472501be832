"""A text slot (a worker's last error, a frame slot's note): written by one
side, read by the other, whose writer it must not trust."""

import numpy as np

from rock_vec.segment.layout import TEXT_BYTES, read_text, write_text


def test_text_that_fits_is_read_back_whole():
    slot = np.full(TEXT_BYTES, 0xFF, np.uint8)
    write_text(slot, "ValueError: bad action (in env 3)")
    assert read_text(slot) == "ValueError: bad action (in env 3)"
    assert not slot[len("ValueError: bad action (in env 3)"):].any()


def test_long_text_is_cut_at_a_whole_character_before_the_closing_nul():
    slot = np.zeros(TEXT_BYTES, np.uint8)
    text = "é" * TEXT_BYTES  # two bytes each: the cut falls inside one
    write_text(slot, text)
    assert slot[-1] == 0
    back = read_text(slot)
    assert back == "é" * ((TEXT_BYTES - 1) // 2)
    assert len(back.encode("utf-8")) <= TEXT_BYTES - 1


def test_a_shorter_text_leaves_nothing_of_the_longer_one_before_it():
    slot = np.zeros(TEXT_BYTES, np.uint8)
    write_text(slot, "x" * 200)
    write_text(slot, "short")
    assert read_text(slot) == "short"
    assert not slot[5:].any()


def test_bytes_that_are_not_utf8_read_as_replacement_characters():
    slot = np.zeros(TEXT_BYTES, np.uint8)
    slot[:4] = [0x61, 0xFF, 0xFE, 0x62]  # a hostile writer's bytes
    assert read_text(slot) == "a\ufffd\ufffdb"


def test_a_slot_with_no_nul_reads_to_its_end():
    slot = np.full(TEXT_BYTES, ord("z"), np.uint8)
    assert read_text(slot) == "z" * TEXT_BYTES
