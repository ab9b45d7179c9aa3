"""GPU probe (2026-11-25): the card's bf16 matmul peak, and the default model's training-step throughput
in bf16 autocast with the batch already on the GPU, channels-last or not, at batch 32/128/512, with FLOPs
counted by torch.utils.flop_counter. One-off: `python -m benchmarks gpu` now measures these figures.

Run on a GPU machine from the repository root: `python3 benchmarks/probe.py > results/benchmarks/gpu/probe.json`."""
import json, sys, time, torch
from torch.utils.flop_counter import FlopCounterMode
from salttune.config import TrainConfig, config_to_dict
from salttune.model import build_model
out = {}
dev = torch.device("cuda")
out["gpu"] = torch.cuda.get_device_name(); out["torch"] = torch.__version__
a = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16); b = torch.randn_like(a)
for _ in range(3): a @ b
torch.cuda.synchronize(); t = time.perf_counter(); n = 10
for _ in range(n): a @ b
torch.cuda.synchronize(); dt = (time.perf_counter() - t) / n
out["peak_bf16_tflops_matmul"] = 2 * 8192**3 / dt / 1e12
del a, b
cfg = TrainConfig()
for cl in (True, False):
  for bs in (32, 128, 512):
    m = build_model(**{"in_channels": 1, **config_to_dict(cfg.model)}).to(dev)
    fmt = torch.channels_last if cl else torch.contiguous_format
    m = m.to(memory_format=fmt)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3, fused=True)
    x = torch.randn(bs, 1, 101, 101, device=dev).contiguous(memory_format=fmt); y = (torch.rand(bs, 1, 101, 101, device=dev) > .5).float()
    def step():
      with torch.autocast("cuda", dtype=torch.bfloat16):
        lo = m(x, None)  # (B, 1, H, W)
        l = torch.nn.functional.binary_cross_entropy_with_logits(lo.float(), y)
      opt.zero_grad(set_to_none=True); l.backward(); opt.step()
    for _ in range(5): step()
    with FlopCounterMode(display=False) as fc: step()
    flops = fc.get_total_flops()
    torch.cuda.synchronize(); t = time.perf_counter(); n = 30
    for _ in range(n): step()
    torch.cuda.synchronize(); dt = (time.perf_counter() - t) / n
    out[f"default_model_cl{int(cl)}_bs{bs}"] = {"img_per_s": bs / dt, "step_ms": dt * 1e3, "tflops": flops / dt / 1e12,
        "share_of_peak": flops / dt / 1e12 / out["peak_bf16_tflops_matmul"]}
print(json.dumps(out, indent=1))
