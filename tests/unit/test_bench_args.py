"""The benchmark's command line rejects bad values before it starts a broker or trains a model."""

from __future__ import annotations

import pytest

from bench.__main__ import parse_args


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--runs", "streamscore,bogus"], "bogus"),
        (["--events", "0"], "--events"),
        (["--repeats", "-1"], "--repeats"),
        (["--rate", "-5"], "--rate"),
        (["--latency-s", "nan"], "--latency-s"),
        (["--soak-s", "inf"], "--soak-s"),
        (["--soak-rate", "0"], "--soak-rate"),
    ],
)
def test_bad_option_exits_2_naming_it(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)

    assert exited.value.code == 2
    assert named in capsys.readouterr().err


def test_soak_run_can_be_left_out() -> None:
    assert parse_args(["--soak-s", "0"]).soak_s == 0
