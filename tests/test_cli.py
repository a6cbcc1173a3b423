"""End-to-end tests of the ``tinygan`` command at tiny sizes: the files each command writes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tinygan.cli import build_parser, interpolation, main, slerp
from tinygan.gans import read_log
from tinygan.gans.trainer import checkpoint_files

TINY_DC = ["--image-size", "16", "--ngf", "4", "--ndf", "4", "--nz", "8", "--batch-size", "8"]
TINY_GAN = ["--data", "ring", "--hidden", "16", "--layers", "1", "--batch-size", "32"]


def run(*args: str) -> int:
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def dc_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dc") / "run"
    assert run("train", "dcgan", *TINY_DC, "--steps", 4, "--sample-every", 2,
               "--checkpoint-every", 2, "--out", out, "--no-progress") == 0  # fmt: skip
    return out


def test_train_writes_log_grids_checkpoints_plot(dc_run, capsys):
    records = read_log(dc_run / "log.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert {"loss_D", "loss_G", "D(x)", "D(G(z))", "grad_norm_D", "grad_norm_G"} <= set(records[0])
    for step in (2, 4):
        img = Image.open(dc_run / "samples" / f"step_{step:07d}.png")
        assert img.size == (8 * 18 + 2, 8 * 18 + 2)  # 64 images of 16 px, padding 2
    assert [s for s, _ in checkpoint_files(str(dc_run))] == [4, 2]
    assert (dc_run / "losses.png").stat().st_size > 1000
    config = json.loads((dc_run / "config.json").read_text())
    assert config["model"] == "dcgan" and config["ngf"] == 4 and config["steps"] == 4


def test_sample_interpolate_eval(dc_run, tmp_path, capsys):
    grid = tmp_path / "grid.png"
    assert run("sample", "--checkpoint", dc_run, "--n", 10, "--nrow", 5, "--out", grid) == 0
    assert Image.open(grid).size == (5 * 18 + 2, 2 * 18 + 2)
    walk = tmp_path / "walk.png"
    assert run("interpolate", "--checkpoint", dc_run, "--pairs", 2, "--frames", 5,
               "--out", walk) == 0  # fmt: skip
    assert Image.open(walk).size == (5 * 18 + 2, 4 * 18 + 2)  # linear + slerp row per pair
    report = tmp_path / "eval.json"
    assert run("eval", "--checkpoint", dc_run, "--n", 50, "--out", report) == 0
    result = json.loads(report.read_text())
    assert result["step"] == 4 and result["n"] == 50
    assert result["frechet_distance"] > 0 and sum(result["class_histogram"]) == 50
    assert result["untrained"]["frechet_distance"] > 0 and "reduction" in result
    out = capsys.readouterr().out
    assert "Frechet distance" in out and "classes among 50 samples" in out


def test_gan_on_ring_resume_matches_straight_run(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    common = [*TINY_GAN, "--checkpoint-every", 3, "--sample-every", 3, "--no-progress"]
    assert run("train", "gan", *common, "--steps", 6, "--out", a, "--threads", 1) == 0
    assert run("train", "gan", *common, "--steps", 3, "--out", b) == 0
    assert run("train", "gan", "--resume", "--steps", 6, "--out", b, "--no-progress") == 0
    strip = [{k: v for k, v in r.items() if k != "time_s"} for r in read_log(b / "log.jsonl")]
    assert strip == [
        {k: v for k, v in r.items() if k != "time_s"} for r in read_log(a / "log.jsonl")
    ]
    assert (b / "samples" / "step_0000006.png").exists()
    report = tmp_path / "eval.json"
    assert run("eval", "--checkpoint", b, "--out", report) == 0
    result = json.loads(report.read_text())
    assert result["num_modes"] == 8 and 0 <= result["high_quality"] <= 1
    assert run("sample", "--checkpoint", b, "--n", 100, "--out", tmp_path / "pts.png") == 0
    assert (tmp_path / "pts.png").stat().st_size > 1000
    assert run("interpolate", "--checkpoint", b, "--out", tmp_path / "x.png") == 1
    assert "does not make images" in capsys.readouterr().err


def test_errors_are_one_clear_line(tmp_path, capsys):
    assert run("train", "gan", "--data", "nowhere", "--steps", 1, "--out", tmp_path / "x") == 1
    assert "--data 'nowhere'" in capsys.readouterr().err
    assert run("train", "dcgan", "--image-size", 30, "--steps", 1, "--out", tmp_path / "y") == 1
    assert "--image-size 30" in capsys.readouterr().err
    assert run("train", "gan", "--resume", "--steps", 1) == 1
    assert "--resume needs --out" in capsys.readouterr().err
    assert run("sample", "--checkpoint", tmp_path / "missing") == 1
    assert "no such checkpoint" in capsys.readouterr().err


def test_refuses_to_train_into_an_existing_run(dc_run, capsys):
    assert run("train", "dcgan", *TINY_DC, "--steps", 1, "--out", dc_run, "--no-progress") == 1
    assert "already holds" in capsys.readouterr().err


def test_cuda_without_cupy_or_gpu_gives_one_message(tmp_path, capsys):
    try:
        from tinygan.backend import cupy

        cupy()
        pytest.skip("CuPy and a GPU are available here")
    except RuntimeError:
        pass
    assert run("train", "dcgan", "--device", "cuda", "--steps", 1, "--out", tmp_path) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cuda" in err[0] and "CuPy" in err[0]


def test_help_documents_every_option(capsys):
    parser = build_parser()
    for argv in (["train", "dcgan"], ["train", "gan"], ["sample"], ["interpolate"], ["eval"]):
        with pytest.raises(SystemExit):
            main([*argv, "--help"])
        text = capsys.readouterr().out
        sub = parser
        for word in argv:
            sub = next(a for a in sub._actions if a.dest in ("command", "model")).choices[word]
        for action in sub._actions:
            for flag in action.option_strings:
                assert flag in text, (argv, flag)
            if action.option_strings and action.dest != "help":
                assert action.help, (argv, action.option_strings)


def test_models_and_python_m(capsys):
    assert run("models") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith("gan ") for line in lines)
    assert any(line.startswith("dcgan ") and "Radford" in line for line in lines)
    proc = subprocess.run([sys.executable, "-m", "tinygan", "models"], capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert proc.stdout.strip().splitlines() == lines


def test_slerp_and_interpolation():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 8)), rng.standard_normal((3, 8))
    np.testing.assert_allclose(slerp(a, b, 0.0), a, atol=1e-12)
    np.testing.assert_allclose(slerp(a, b, 1.0), b, atol=1e-12)
    ua, ub = a / np.linalg.norm(a, axis=1, keepdims=True), b / np.linalg.norm(b, axis=1)[:, None]
    mid = slerp(ua, ub, 0.5)  # on the great circle: unit length, equal angles to both ends
    np.testing.assert_allclose(np.linalg.norm(mid, axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose((mid * ua).sum(1), (mid * ub).sum(1), atol=1e-12)
    np.testing.assert_allclose(slerp(a, a, 0.3), a, atol=1e-12)  # w = 0 falls back to lerp
    walk = interpolation({"z": a, "y": np.array([1, 2, 3])}, {"z": b, "y": np.array([7, 8, 9])},
                         4, ["linear", "slerp"])  # fmt: skip
    assert walk["z"].shape == (3 * 2 * 4, 8) and list(walk["y"][:8]) == [1] * 8
    np.testing.assert_allclose(walk["z"][3], b[0])


def test_epochs_become_steps(tmp_path):
    # 50,000 ring points in batches of 12,500: 4 batches per epoch, 2 per step with --d-steps 2
    args = ["--data", "ring", "--hidden", "8", "--layers", "1", "--batch-size", "12500"]
    assert run("train", "gan", *args, "--epochs", 3, "--d-steps", 2, "--out", tmp_path,
               "--no-progress", "--lr-decay", 0.5) == 0  # fmt: skip
    records = read_log(tmp_path / "log.jsonl")
    assert len(records) == 6 and records[-1]["epoch"] == 3.0
    assert json.loads((tmp_path / "config.json").read_text())["steps"] == 6
    assert records[-1]["lr_G"] == 0.0  # the decay reached its end: it knew the step count
