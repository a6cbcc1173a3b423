"""benchmarks/harness.py's interleaved timing: turns rotate, every side is timed as often,
short calls get one untimed settle call per turn and long ones do not, and a self-timed
worker's own figure is what gets recorded."""

from __future__ import annotations

import time

import pytest

from benchmarks.harness import SelfTimed, time_interleaved


class _Recorder:
    """A callable that logs each call under its name and sleeps ``seconds``."""

    def __init__(self, name: str, log: list[str], seconds: float = 0.0) -> None:
        self.name, self.log, self.seconds = name, log, seconds

    def __call__(self) -> None:
        self.log.append(self.name)
        time.sleep(self.seconds)


class _Reports(SelfTimed):
    def __call__(self) -> float:
        return 0.25  # far from the wall time of this call


def test_short_calls_settle_once_per_turn_and_long_calls_do_not():
    log: list[str] = []
    fns = {"short": _Recorder("short", log), "long": _Recorder("long", log, 0.02)}
    timings = time_interleaved(fns, warmup=1, reps=3, settle_below=0.01)
    assert timings["short"].reps == timings["long"].reps == 3
    # warm-up: one call each; then three rounds in rotating order, "short" twice per turn
    turns = [["short", "short", "long"], ["long", "short", "short"]]
    assert log == ["short", "long"] + turns[0] + turns[1] + turns[0]
    assert timings["long"].low >= 0.02


def test_self_timed_callables_report_their_own_time():
    timings = time_interleaved({"worker": _Reports()}, warmup=1, reps=2, settle_below=0.0)
    assert timings["worker"].median == timings["worker"].low == 0.25


def test_ab_times_each_checkout_in_its_own_processes(tmp_path, monkeypatch):
    """benchmarks.ab runs every round's step in one fresh process per tree (each importing
    its own tinygan, asserted in the child) and writes both trees' timings."""
    import json
    from pathlib import Path

    from benchmarks import ab, harness

    monkeypatch.setattr(harness, "RESULTS", tmp_path)
    repo = Path(__file__).resolve().parents[1]
    ab.main(["mlp_gan_step", str(repo), str(repo), "--rounds", "2", "--reps", "2", "--warmup", "0"])
    (written,) = tmp_path.glob("*_cpu_ab_mlp_gan_step.json")
    (case,) = json.loads(written.read_text())["cases"]
    timings = list(case["timings"].values())
    assert [t["reps"] for t in timings] == [4, 4]  # 2 rounds x 2 steps, both trees
    assert all(0 < t["min_s"] <= t["median_s"] <= t["max_s"] for t in timings)


def test_ab_takes_a_layer_case_by_name(tmp_path, monkeypatch):
    """A layer case of ``benchmarks.run layers`` runs by its name, in a file named after it;
    a name that is no case is refused with the list of cases."""
    import json
    from pathlib import Path

    from benchmarks import ab, harness

    monkeypatch.setattr(harness, "RESULTS", tmp_path)
    repo = Path(__file__).resolve().parents[1]
    case = "D5 conv 512->1 4->1 fwd+bwd"
    ab.main([case, str(repo), str(repo), "--rounds", "1", "--reps", "2", "--warmup", "0"])
    (written,) = tmp_path.glob("*_cpu_ab_d5_conv_512_1_4_1_fwd_bwd.json")
    (result,) = json.loads(written.read_text())["cases"]
    assert result["case"] == case
    assert [t["reps"] for t in result["timings"].values()] == [2, 2]
    with pytest.raises(SystemExit, match="no case 'D9'.*dcgan_step"):
        ab.main(["D9", str(repo), str(repo)])
