source benchmarks/gpu/setup.sh  # with the wheels in .whl/ and ../shared/tgs_sample copied to .gpu/
nvidia-smi -L
D=.gpu/tgs_sample
for n in 1 2 4 8; do
  t0=$(date +%s.%N)
  for k in $(seq 1 $n); do
    OMP_NUM_THREADS=2 python3 -c 'import sys; from salttune.cli import main; sys.exit(main())' train --data $D --set epochs=4 --set device=cuda --set seed=$k --out /tmp/share$n-$k --quiet > /tmp/share$n-$k.log 2>&1 &
  done
  wait
  t1=$(date +%s.%N)
  python3 - $n <<'PY'
import json, sys
n = int(sys.argv[1]); tot = 0; rows = []
for k in range(1, n + 1):
    m = [json.loads(l) for l in open(f"/tmp/share{n}-{k}/metrics.jsonl")]
    ips = [e["train_images_per_s"] for e in m[1:]]  # epochs 2-4: after warm-up
    rows.append(sum(ips) / len(ips)); tot += rows[-1]
print(json.dumps({"trials": n, "per_trial_train_images_per_s": [round(r) for r in rows], "total_train_images_per_s": round(tot)}))
PY
  echo "wall $(python3 -c "print(round($t1-$t0,1))") s"
done 2>&1 | tee $OUT/share.txt
