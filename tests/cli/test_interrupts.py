"""After Ctrl-C, whatever error the interrupt caused is reported as the interruption (exit 130).

A KeyboardInterrupt that lands inside a `with lock:` can surface as "RuntimeError: release
unlocked lock"; the user pressed Ctrl-C, so that is what they are told.
"""

from __future__ import annotations

import signal

import pytest

from pipeline.cli import main as cli_main


def test_an_error_after_ctrl_c_is_the_interruption(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli_main._Interrupts, "seen", True)
    with pytest.raises(SystemExit) as ended:
        cli_main._handle(RuntimeError("release unlocked lock"), verbose=False)
    assert ended.value.code == cli_main.EXIT_INTERRUPTED
    assert "interrupted" in capsys.readouterr().err


def test_without_ctrl_c_it_stays_an_internal_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main._Interrupts.seen is False
    with pytest.raises(SystemExit) as ended:
        cli_main._handle(RuntimeError("release unlocked lock"), verbose=False)
    assert ended.value.code == 1
    assert "internal error: RuntimeError" in capsys.readouterr().err


def test_the_handler_notes_ctrl_c_and_still_interrupts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_main._Interrupts, "seen", False)
    with pytest.raises(KeyboardInterrupt):
        cli_main._Interrupts._heard(signal.SIGINT, None)
    assert cli_main._Interrupts.seen is True
