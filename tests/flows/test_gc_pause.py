"""The collector is paused during the heavy steps and always comes back as it was."""

import gc
import threading

import pytest

from flows.gc_pause import gc_paused, gc_paused_during


@pytest.fixture(autouse=True)
def _collector_on():
    gc.enable()
    yield
    gc.enable()


def test_nested_pauses_resume_the_collector_only_when_the_outer_one_ends():
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer step still runs
    assert gc.isenabled()


def test_a_failing_step_resumes_the_collector():
    @gc_paused_during
    def step():
        assert not gc.isenabled()
        raise ValueError("source 'asp': row 3: bad")

    with pytest.raises(ValueError, match="row 3"):
        step()
    assert gc.isenabled()


def test_a_collector_off_before_stays_off():
    gc.disable()
    with gc_paused():
        pass
    assert not gc.isenabled()


def test_steps_overlapping_in_threads_resume_it_when_the_last_ends():
    inside, leave = threading.Event(), threading.Event()

    def other():
        with gc_paused():
            inside.set()
            leave.wait(5)

    thread = threading.Thread(target=other)
    with gc_paused():
        thread.start()
        inside.wait(5)
    assert not gc.isenabled()  # the thread's step has not ended
    leave.set()
    thread.join(5)
    assert gc.isenabled()


def test_a_decorated_step_keeps_its_name_and_signature():
    import inspect

    @gc_paused_during
    def locate(spec, home, run_id: str = "x") -> int:
        """Doc."""
        return 3

    assert locate.__name__ == "locate" and locate.__doc__ == "Doc."
    assert list(inspect.signature(locate).parameters) == ["spec", "home", "run_id"]
    assert locate(1, 2) == 3


def test_the_memory_is_given_back_once_when_the_last_pause_ends(monkeypatch):
    import flows.gc_pause as pause

    given = []
    monkeypatch.setattr(pause, "give_back", lambda: given.append(gc.isenabled()))
    with gc_paused():
        with gc_paused():
            pass
        assert given == []  # the outer step still runs: its memory is still in use
    assert given == [True]
