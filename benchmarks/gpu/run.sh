set -x
source benchmarks/gpu/setup.sh  # with the wheels in .whl/ and ../shared/tgs_sample copied to .gpu/
nvidia-smi -L; python3 -c "import torch, ray, optuna, albumentations; print(torch.__version__, ray.__version__, optuna.__version__, albumentations.__version__)"
python3 benchmarks/probe.py 2>&1 | tee $OUT/probe.json
D=.gpu/tgs_sample
/usr/bin/time -v python3 -c 'import sys; from salttune.cli import main; sys.exit(main())' train --data $D --set epochs=6 --set device=cuda --out /tmp/r_cl --quiet 2>&1 | tail -40
cp /tmp/r_cl/metrics.jsonl $OUT/train_cuda_cl_metrics.jsonl
salttune train --data $D --set epochs=3 --set device=cuda --set channels_last=false --out /tmp/r_nocl --quiet 2>&1 | tail -15
salttune train --data $D --set epochs=2 --set device=cuda --set amp=false --out /tmp/r_fp32 --quiet 2>&1 | tail -8
time salttune synth --out /tmp/synth --n-train 1000 --n-test 18000 --quiet 2>&1 | tail -2
time salttune predict --checkpoint /tmp/r_cl/checkpoint/state.pt --data /tmp/synth --out /tmp/sub.csv --tta flip --quiet 2>&1 | tail -3
time salttune search --space search_spaces/lovasz.yaml --data /tmp/synth --set trials=8 --set asha.max_t=4 --set asha.grace_period=2 --set startup_trials=4 2>&1 | tail -40
cp results/lovasz/leaderboard.csv $OUT/ 2>/dev/null
nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv
time salttune ensemble --search lovasz --top 4 --quiet 2>&1 | tail -20
time salttune score results/lovasz/ensemble/submission.csv --truth /tmp/synth/test_truth.csv
