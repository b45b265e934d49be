#!/usr/bin/env bash
# Build an image of this repository, tag it (semver, git short sha, latest), push it to ECR and
# print the URI to put in terraform/terraform.tfvars. See scripts/README.md.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/build-and-push.sh REGION ACCOUNT_ID PROJECT [IMAGE]

Build docker/Dockerfile.<IMAGE>, tag it <version>, <git short sha> and latest, push the three tags
to the ECR repository <PROJECT> (gpu), <PROJECT>-cpu or <PROJECT>-lambda (created when missing,
scan on push), and print the image URI for terraform.tfvars (container_image).

Arguments:
  REGION       AWS region of the registry, e.g. eu-west-1
  ACCOUNT_ID   12-digit AWS account id
  PROJECT      repository name, e.g. face-embed (Terraform's project_name)
  IMAGE        gpu (default), cpu or lambda

Environment:
  VERSION          semver tag (default: latest git tag vX.Y.Z, else pyproject.toml's version)
  BAKE_MODEL_PACK  bake an insightface pack into the gpu/cpu image, e.g. buffalo_l
  MODEL_PACK_DIR   bake a local model root instead (a folder holding models/<pack>/*.onnx)
  LAMBDA_ARCH      x86_64 (default) or arm64, for the lambda image
  AWS_PROFILE, AWS_ENDPOINT_URL ...  read by the aws CLI as usual

Needs docker (with BuildKit), the aws CLI and git. Nothing secret is printed: the ECR password goes
from `aws ecr get-login-password` straight into `docker login --password-stdin`.

  -h, --help   show this help
EOF
}

die() {
  printf 'build-and-push.sh: %s\n' "$*" >&2
  exit 1
}

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  usage
  exit 0
fi
if [[ $# -lt 3 || $# -gt 4 ]]; then
  usage >&2
  exit 2
fi

readonly REGION=$1 ACCOUNT_ID=$2 PROJECT=$3 IMAGE=${4:-gpu}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT

[[ "$REGION" =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]] || die "REGION '$REGION' is not an AWS region (e.g. eu-west-1)"
[[ "$ACCOUNT_ID" =~ ^[0-9]{12}$ ]] || die "ACCOUNT_ID must be 12 digits"
[[ "$PROJECT" =~ ^[a-z0-9][a-z0-9._-]*$ ]] || die "PROJECT '$PROJECT' is not a valid ECR repository name"

case "$IMAGE" in
  gpu) repository=$PROJECT platform=linux/amd64 ;;
  cpu) repository=$PROJECT-cpu platform=linux/amd64 ;;
  lambda)
    repository=$PROJECT-lambda
    case "${LAMBDA_ARCH:-x86_64}" in
      x86_64) platform=linux/amd64 ;;
      arm64) platform=linux/arm64 ;;
      *) die "LAMBDA_ARCH must be x86_64 or arm64" ;;
    esac
    ;;
  *) die "IMAGE must be gpu, cpu or lambda (got '$IMAGE')" ;;
esac
dockerfile="$ROOT/docker/Dockerfile.$IMAGE"
[[ -f "$dockerfile" ]] || die "missing $dockerfile"

for tool in docker aws git; do
  command -v "$tool" >/dev/null || die "'$tool' is not on PATH"
done

# --- tags --------------------------------------------------------------------------------------
version=${VERSION:-}
if [[ -z "$version" ]]; then
  version=$(git -C "$ROOT" describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null || true)
  version=${version#v}
fi
if [[ -z "$version" ]]; then
  version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$ROOT/pyproject.toml" | head -n 1)
fi
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] ||
  die "version '$version' is not semver X.Y.Z[-pre] (set VERSION)"

git_sha=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) || die "not a git checkout: cannot tag the commit"
# Uncommitted changes are not in that commit: say so in the tag instead of lying.
if [[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
  git_sha="$git_sha-dirty"
fi

registry="$ACCOUNT_ID.dkr.ecr.$REGION.amazonaws.com"
uri="$registry/$repository"
tags=("$version" "$git_sha" latest)

# --- build -------------------------------------------------------------------------------------
build_args=(--platform "$platform" -f "$dockerfile"
  --build-arg "VERSION=$version" --build-arg "GIT_SHA=$git_sha")
for tag in "${tags[@]}"; do
  build_args+=(-t "$uri:$tag")
done
if [[ "$IMAGE" != lambda ]]; then
  if [[ -n "${BAKE_MODEL_PACK:-}" ]]; then
    build_args+=(--build-arg "BAKE_MODEL_PACK=$BAKE_MODEL_PACK")
  fi
  if [[ -n "${MODEL_PACK_DIR:-}" ]]; then
    [[ -d "$MODEL_PACK_DIR/models" ]] || die "MODEL_PACK_DIR must hold models/<pack>/ ($MODEL_PACK_DIR/models is missing)"
    build_args+=(--build-context "model-pack=$MODEL_PACK_DIR")
  fi
fi

echo "building $IMAGE image $uri (${tags[*]}) for $platform"
docker build "${build_args[@]}" "$ROOT"

# --- push --------------------------------------------------------------------------------------
if ! aws ecr describe-repositories --region "$REGION" --repository-names "$repository" >/dev/null 2>&1; then
  echo "creating ECR repository $repository"
  aws ecr create-repository --region "$REGION" --repository-name "$repository" \
    --image-scanning-configuration scanOnPush=true >/dev/null
fi

echo "logging in to $registry"
aws ecr get-login-password --region "$REGION" |
  docker login --username AWS --password-stdin "$registry" >/dev/null

for tag in "${tags[@]}"; do
  docker push "$uri:$tag"
done

echo
echo "pushed $uri:{$(IFS=,; echo "${tags[*]}")}"
case "$IMAGE" in
  gpu)
    echo "For terraform/terraform.tfvars (the commit tag changes with every commit, so apply rolls it out):"
    echo "container_image = \"$uri:$git_sha\""
    ;;
  cpu)
    echo "CPU image (docker-compose, CPU Batch jobs; docker/README.md): $uri:$git_sha"
    ;;
  lambda)
    echo "Lambda image (package_type Image, per-function image_config.command; docker/README.md): $uri:$git_sha"
    ;;
esac
