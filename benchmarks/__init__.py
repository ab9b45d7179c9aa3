"""``salttune bench``: figures measured against a reference, written to ``results/benchmarks/``.

Modules:
    training    ``train``, ``predict``: salttune's training and prediction against plain PyTorch
    quality     ``quality``: recipes compared out of fold at the same wall-clock budget, over folds and seeds
    search      ``search``, ``scale``: real ``salttune search`` processes (no Ray imported here)
    replay      ``record``, ``replay``: search algorithms replayed in virtual time on recorded learning curves
    confirm     ``confirm``: the live ``search`` races replayed, to check the replay ranks as reality does
    gpu         ``gpu``: training images/s and share of the matmul peak, trials sharing the device, ensemble prediction
    figures     the JSON file of each benchmark, the README that shows them, the replay's anytime plot
"""

from salttune.bench.figures import confirm_table, plot_anytime, render_readme, replay_table, save_result
from salttune.bench.gpu import bench_gpu, gpu_table
from salttune.bench.search import bench_scale, bench_search
from salttune.bench.quality import bench_quality
from salttune.bench.training import PLAIN_RECIPE, bench_predict, bench_train

__all__ = ["bench_train", "bench_predict", "bench_quality", "bench_search", "bench_scale", "save_result", "render_readme",
           "plot_anytime", "replay_table", "confirm_table", "PLAIN_RECIPE", "bench_gpu", "gpu_table"]
