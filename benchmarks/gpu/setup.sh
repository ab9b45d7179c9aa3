# Source me on the device: installs the carried wheels into /tmp/site and ray from its tarball.
if [ ! -d /tmp/site/ray ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  tar xJf .whl/ray.tar.xz -C /tmp/site
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
salttune() { python3 -c 'import sys; from salttune.cli import main; sys.exit(main())' "$@"; }
