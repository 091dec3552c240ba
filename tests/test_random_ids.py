"""``adapters.shapes.random_hex``: ids drawn from a block of OS randomness, never repeated,
not even by a forked child that inherited the block."""

import os

from adapters.shapes import random_hex


def test_ids_are_hex_of_the_asked_size_and_distinct_across_blocks():
    ids = [random_hex(24) for _ in range(2000)]  # ~12 blocks of 4 KiB
    assert all(len(value) == 48 and int(value, 16) >= 0 for value in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_child_does_not_repeat_its_parents_next_ids():
    random_hex(24)  # a block is in hand, with bytes left in it
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read)
        os.write(write, "".join(random_hex(24) for _ in range(4)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        from_child = pipe.read()
    os.waitpid(child, 0)
    from_parent = "".join(random_hex(24) for _ in range(4))
    assert len(from_child) == len(from_parent) == 192
    assert from_child != from_parent
