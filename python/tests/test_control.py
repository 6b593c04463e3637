"""A run releases the GIL, reports every step to a callback, and stops between steps on
Ctrl-C or when the callback raises."""

import os
import signal
import threading
import time

import pytest

import lattice

DEBUG = "configs/debug.ron"


@pytest.fixture(scope="module")
def sim(root):
    return lattice.Simulation(root / DEBUG, backend="cpu")


def test_the_callback_sees_every_step(sim):
    events = []
    sim.run(ids=[0, 1], steps=3, callback=events.append)
    assert [e["step"] for e in events] == [1, 2, 3]
    assert all(e["steps"] == 3 and e["items"] == (0, 2) and e["ms"] >= 0 for e in events)
    assert events[0]["units"] == 2 * 15**3 and events[0]["flows"] is None


def test_flows_steps_carry_their_counts(root):
    flows = lattice.Simulation(root / "configs/flows_debug.ron", backend="cpu")
    events = []
    flows.run(ids=[0], steps=2, callback=events.append)
    assert [e["step"] for e in events] == [1, 2]
    assert events[0]["flows"]["live"] == 400


def test_an_exception_in_the_callback_stops_the_run(sim):
    class Enough(Exception):
        pass

    seen = []

    def stop_at_two(event):
        seen.append(event["step"])
        if event["step"] == 2:
            raise Enough("stop here")

    with pytest.raises(Enough, match="stop here"):
        sim.run(steps=50, callback=stop_at_two)
    assert seen == [1, 2]


@pytest.fixture
def ctrl_c_raises():
    """Python's own Ctrl-C handler for the test: a process started in the background by a
    non-interactive shell inherits SIGINT ignored, and Python then installs no handler."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_stops_a_run_between_steps(sim, ctrl_c_raises):
    kill = (os.getpid(), signal.SIGINT)
    timer = threading.Timer(0.5, os.kill, kill)
    # Should the first Ctrl-C go unnoticed, a second one at 20 s ends the run anyway, so the
    # test fails on the time below instead of running 100,000 steps.
    backstop = threading.Timer(20, os.kill, kill)
    start = time.monotonic()
    timer.start()
    backstop.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            sim.run(steps=100_000)
    finally:
        timer.cancel()
        backstop.cancel()
    # One DEBUG step of two items takes well under a second on any machine.
    assert time.monotonic() - start < 10, "the first Ctrl-C did not stop the run"


def test_the_gil_is_released_while_the_engine_computes(sim):
    done = threading.Event()
    errors = []

    def work():
        try:
            sim.run(ids=[0, 1], steps=12)
        except Exception as e:  # reported below, in the test's thread
            errors.append(e)
        finally:
            done.set()

    runner = threading.Thread(target=work)
    counted = 0
    start = time.monotonic()
    runner.start()
    while not done.is_set():
        counted += 1
    runner.join()
    elapsed = time.monotonic() - start
    assert not errors
    assert elapsed > 0.2, "the run is long enough to measure"
    # With the GIL held for the run, this loop could only run at the step boundaries.
    assert counted / elapsed > 100_000, f"{counted} loop turns in {elapsed:.2f} s"
