set -x
# Issue 17's GPU checks, as one script for the next session that is lent a GPU machine (none was lent to the
# session that wrote it: nothing here has run on a GPU yet). Carry .whl/ (see setup.sh: ray, optuna, albumentations,
# segmentation_models_pytorch, timm wheels) and .gpu/tgs_sample (../shared/tgs_sample); about 6 minutes.
source benchmarks/gpu/setup.sh
nvidia-smi -L
D=.gpu/tgs_sample
# every GPU figure: training images/s (default U-Net, smp resnet34 U-Net; resident batches and fed by the device
# data path), share of the bf16 matmul peak, 1/2/4/8 trials sharing the GPU, 18,000 x 10 members x flip
python -m benchmarks gpu --out $OUT 2>&1 | tail -30
# salttune train on the real images: the device data path against the loader path, bf16 + channels-last
salttune train --data $D --set epochs=3 --set device=cuda --out /tmp/dev --quiet 2>&1 | tail -5
salttune train --data $D --set epochs=3 --set device=cuda --set augment.path=loader --out /tmp/loader --quiet 2>&1 | tail -5
grep -h train_images_per_s /tmp/dev/metrics.jsonl /tmp/loader/metrics.jsonl | python3 -c 'import sys, json; [print(json.loads(l)["train_images_per_s"]) for l in sys.stdin]'
# one epoch of each GPU search space on the real images (a trial per space: fractional GPUs, the device path)
for s in lovasz kaggle architecture losses optimizers; do
  salttune search --space search_spaces/$s.yaml --data $D --name gpu-$s --set trials=2 --set asha.max_t=1 --set asha.grace_period=1 2>&1 | tail -6
done
