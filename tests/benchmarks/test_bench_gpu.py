"""``python -m benchmarks gpu`` on the CPU at tiny sizes: every figure is measured, positive, and consistent with the
others (shares of the peak, ratios, the projection); the FLOP count is the same when counted again."""

import importlib.util
import json
import math

import pytest
import torch

from conftest import run_bench
from benchmarks.gpu import PROJECTED_IMAGES, PROJECTED_MEMBERS, bench_gpu, step_flops
from salttune.config import config_from_dict, config_to_dict

HAS_SMP = importlib.util.find_spec("segmentation_models_pytorch") is not None
TINY = {"model": {"base_width": 4, "depth": 2, "encoder": "resnet18"}}


@pytest.fixture
def one_thread():
    """One CPU thread in this process: the figures stay the same kind, and a busy machine cannot stall them."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _count_again(model_args: dict, cfg, batch_size: int, size: int) -> int:
    """FLOPs of one training step of a fresh network of ``model_args``, counted here with public pieces only."""
    from salttune.heads import build_training_loss
    from salttune.model import build_model
    from salttune.optim import make_optimizer

    torch.manual_seed(1)  # other weights and data than the bench's: the count depends on shapes alone
    model = build_model(**model_args).to(memory_format=torch.channels_last)
    batch = (torch.rand(batch_size, 1, size, size).contiguous(memory_format=torch.channels_last),
             (torch.rand(batch_size, 1, size, size) > 0.5).float(), torch.zeros(batch_size))
    return step_flops(model, make_optimizer(model.parameters(), cfg.optim), build_training_loss(cfg.loss, 10).at(0), batch,
                      torch.device("cpu"))


def test_bench_gpu_measures_consistent_figures_on_the_cpu(one_thread):
    cfg = config_from_dict(TINY)
    bs, size, n, m = 2, 32, 8, 2
    flags = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    r = bench_gpu(cfg, "cpu", batch_size=bs, steps=2, warmup=1, repeats=2, peak_n=128, concurrent=(1, 2), images=n,
                  members=m, predict_batch_size=4, size=size, encoder=HAS_SMP, share_threads=1)
    assert r["device_type"] == "cpu" and r["peak_dtype"] == "float32" and r["torch"] == torch.__version__
    assert r["peak_tflops"] > 0
    assert set(r["training"]) == ({"default", "encoder"} if HAS_SMP else {"default"})
    for name, t in r["training"].items():
        assert t["images_per_s"] > 0 and len(t["all_images_per_s"]) == 2 and t["images_per_s"] == pytest.approx(
            sorted(t["all_images_per_s"])[0] / 2 + sorted(t["all_images_per_s"])[1] / 2)  # the median of two
        assert t["flops_per_image"] > 0
        # the default augmentations have device versions: fed by the device path, at a positive rate
        assert t["data_path"] == "device" and t["images_per_s_with_data"] > 0 and len(t["all_images_per_s_with_data"]) == 2
        args = {**config_to_dict(cfg.model), "in_channels": 1}
        if name == "encoder":
            args.update(network="smp_unet", encoder_weights=None)
        assert t["flops_per_image"] * bs == _count_again(args, cfg, bs, size)  # deterministic: shapes alone
        assert t["achieved_tflops"] == pytest.approx(t["flops_per_image"] * t["images_per_s"] / 1e12)
        assert 0 < t["share_of_peak"] < 1 and t["share_of_peak"] == pytest.approx(t["achieved_tflops"] / r["peak_tflops"])
    if HAS_SMP:  # resnet18 under the U-Net: far more work per image than the tiny home-made network
        assert r["training"]["encoder"]["network"] == "smp_unet" and r["encoder"] == "resnet18"
        assert r["training"]["encoder"]["flops_per_image"] > 10 * r["training"]["default"]["flops_per_image"]
    one, two = r["sharing"]["1"], r["sharing"]["2"]
    assert one["ratio_to_1"] == 1.0 and one["total_images_per_s"] > 0 and len(one["per_process_images_per_s"]) == 1
    assert two["total_images_per_s"] > 0 and math.isfinite(two["ratio_to_1"]) and two["ratio_to_1"] > 0
    assert two["ratio_to_1"] == pytest.approx(two["total_images_per_s"] / one["total_images_per_s"])
    assert len(two["per_process_images_per_s"]) == 2 and all(x > 0 for x in two["per_process_images_per_s"])
    assert one["threads_per_process"] == two["threads_per_process"] == 1
    # the span from the first start to the last end is at least each process's own time
    assert two["total_images_per_s"] <= sum(two["per_process_images_per_s"]) * (1 + 1e-9)
    p = r["prediction"]
    assert (p["images"], p["members"], p["tta"]) == (n, m, "flip") and p["seconds"] > 0
    assert p["projected_18000x10_s"] == pytest.approx(p["seconds"] * PROJECTED_IMAGES * PROJECTED_MEMBERS / (n * m))
    assert p["member_images_per_s"] == pytest.approx(n * m / p["seconds"])
    assert r["sizes"]["concurrent"] == [1, 2] and r["sizes"]["size"] == size
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark) == flags  # restored
    json.dumps(r)  # plain data, as save_result writes it


@pytest.mark.skipif(not HAS_SMP, reason="the CLI also measures an smp encoder network: needs salttune[encoders]")
def test_bench_gpu_cli_writes_gpu_cpu_figures(tmp_path):
    out = tmp_path / "bench"
    proc = run_bench("gpu", "--out", str(out), "--steps", "1", "--repeats", "1", "--images", "4", "--top", "1",
                   "--concurrent", "1", "--set", "batch_size=2", "--set", "model.base_width=4", "--set", "model.depth=2",
                   "--set", "model.encoder=resnet18", env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    name = "gpu" if torch.cuda.is_available() else "gpu-cpu"  # a CPU run never overwrites the GPU's figures
    assert not (out / ("gpu-cpu" if name == "gpu" else "gpu.json")).exists()
    r = json.loads((out / f"{name}.json").read_text())
    assert r["benchmark"] == name and r["command"].startswith("python -m benchmarks gpu --out")
    assert r["sizes"]["concurrent"] == [1] and r["sizes"]["batch_size"] == 2 and r["sizes"]["steps"] == 1
    assert r["prediction"]["images"] == 4 and r["prediction"]["members"] == 1 and r["prediction"]["seconds"] > 0
    assert r["training"]["default"]["parameters"] < 20_000 and r["training"]["default"]["images_per_s"] > 0
    assert r["sharing"]["1"]["total_images_per_s"] > 0
    readme = (out / "README.md").read_text()
    assert f"## {name}" in readme and "sharing.1.total_images_per_s" in readme and "projected_18000x10_s" in readme
    assert "| trials at once | total images/s | vs one trial |" in proc.stdout
