import pytest


@pytest.fixture
def interrupt(monkeypatch):
    """``interrupt(target, name, after)``: the call number ``after + 1`` of ``target.name`` raises
    KeyboardInterrupt, as Ctrl-C would; returns the list that counts the calls that went through.
    Undone at the end of the test, or earlier with ``interrupt.undo()``."""

    def arm(target, name, after):
        real, calls = getattr(target, name), []

        def wrapped(*args, **kwargs):
            if len(calls) == after:
                raise KeyboardInterrupt
            calls.append(1)
            return real(*args, **kwargs)

        monkeypatch.setattr(target, name, wrapped)
        return calls

    arm.undo = monkeypatch.undo
    return arm
