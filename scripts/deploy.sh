#!/usr/bin/env bash
# Package the Lambdas, then terraform init / plan / apply (after a typed "yes") and print the
# outputs and what to do next. See scripts/README.md and terraform/README.md.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/deploy.sh [options]

  1. make package            Lambda zips into build/lambda (LAMBDA_ARCH=x86_64|arm64)
  2. terraform init          backend settings from the environment (below)
  3. terraform plan          saved to <terraform dir>/tfplan
  4. terraform apply tfplan  only after you type "yes" (or with --auto-approve)
  5. terraform output        and the next steps

Options:
  --chdir DIR       Terraform root module (default: terraform/ of this repository)
  --skip-package    use the zips already in build/lambda
  --auto-approve    apply without asking (CI); otherwise the plan is applied only on "yes"
  -h, --help        show this help

Environment (all optional):
  TF_BACKEND_CONFIG  a backend config file for `terraform init -backend-config=FILE`
  TF_STATE_BUCKET, TF_STATE_KEY, TF_STATE_REGION, TF_STATE_LOCK_TABLE, TF_STATE_USE_LOCKFILE=true
                     S3 backend settings passed as -backend-config=bucket=... etc.
                     (scripts/create-state-backend.sh creates the bucket and the table).
                     Either way the root module needs a backend block (terraform/ has backend "s3").
  LAMBDA_ARCH        x86_64 (default) or arm64 (must match lambda_architecture)
  TF_VAR_*, AWS_PROFILE, AWS_REGION ...   read by Terraform as usual

terraform/ keeps its state in S3: without backend settings deploy.sh stops, unless a
*_override.tf in the root module replaces the backend (for example backend "local" for a throwaway
stack). Exit status: 0 applied or nothing to change, 1 an error or the plan was not approved.
EOF
}

die() {
  printf 'deploy.sh: %s\n' "$*" >&2
  exit 1
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
tf_dir="$ROOT/terraform"
package=true
auto_approve=false

while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
    --chdir)
      [[ $# -ge 2 ]] || { usage >&2; exit 2; }
      tf_dir=$2
      shift 2
      ;;
    --skip-package)
      package=false
      shift
      ;;
    --auto-approve)
      auto_approve=true
      shift
      ;;
    *)
      printf 'deploy.sh: unknown argument: %s\n\n' "$1" >&2
      usage >&2
      exit 2
      ;;
  esac
done

command -v terraform >/dev/null || die "terraform is not on PATH (>= 1.5, terraform/README.md)"
[[ -d "$tf_dir" ]] || die "no Terraform folder at $tf_dir"
[[ -f "$tf_dir/terraform.tfvars" ]] ||
  die "missing $tf_dir/terraform.tfvars: cp terraform.tfvars.example $tf_dir/terraform.tfvars and set container_image (scripts/build-and-push.sh prints it)"

# --- 1. Lambda packages ------------------------------------------------------------------------
if [[ "$package" == true ]]; then
  echo "==> packaging the Lambdas (make package)"
  make -C "$ROOT" package LAMBDA_ARCH="${LAMBDA_ARCH:-x86_64}"
fi

# --- 2. init -----------------------------------------------------------------------------------
backend_args=()
if [[ -n "${TF_BACKEND_CONFIG:-}" ]]; then
  [[ -f "$TF_BACKEND_CONFIG" ]] || die "TF_BACKEND_CONFIG=$TF_BACKEND_CONFIG is not a file"
  backend_args+=("-backend-config=$TF_BACKEND_CONFIG")
fi
[[ -n "${TF_STATE_BUCKET:-}" ]] && backend_args+=("-backend-config=bucket=$TF_STATE_BUCKET")
[[ -n "${TF_STATE_KEY:-}" ]] && backend_args+=("-backend-config=key=$TF_STATE_KEY")
[[ -n "${TF_STATE_REGION:-}" ]] && backend_args+=("-backend-config=region=$TF_STATE_REGION")
[[ -n "${TF_STATE_LOCK_TABLE:-}" ]] && backend_args+=("-backend-config=dynamodb_table=$TF_STATE_LOCK_TABLE")
[[ "${TF_STATE_USE_LOCKFILE:-}" == true ]] && backend_args+=("-backend-config=use_lockfile=true")
if [[ ${#backend_args[@]} -eq 0 ]] && grep -qsE '^[[:space:]]*backend[[:space:]]+"s3"' "$tf_dir"/*.tf &&
  ! grep -qsE '^[[:space:]]*backend[[:space:]]+"' "$tf_dir"/*_override.tf; then
  # terraform init -input=false would stop on the missing bucket with a less helpful message.
  die "the state lives in S3: set TF_STATE_BUCKET and TF_STATE_REGION (and TF_STATE_LOCK_TABLE or TF_STATE_USE_LOCKFILE=true), or TF_BACKEND_CONFIG; scripts/create-state-backend.sh creates the bucket and table"
fi
if [[ ${#backend_args[@]} -gt 0 ]] && ! grep -qsE '^[[:space:]]*backend[[:space:]]+"' "$tf_dir"/*.tf; then
  # Without a backend block Terraform ignores -backend-config and keeps the state local.
  die "backend settings given but $tf_dir has no backend block: add $tf_dir/backend.tf with: terraform { backend \"s3\" {} }"
fi

echo "==> terraform init"
# ${a[@]+...}: an empty array is "unbound" under set -u in bash < 4.4 (macOS).
terraform -chdir="$tf_dir" init -input=false ${backend_args[@]+"${backend_args[@]}"}

# --- 3. plan -----------------------------------------------------------------------------------
echo "==> terraform plan"
set +e
terraform -chdir="$tf_dir" plan -input=false -detailed-exitcode -out=tfplan
plan_status=$?
set -e
case "$plan_status" in
  0) changes=false ;;
  2) changes=true ;;
  *) die "terraform plan failed (exit $plan_status)" ;;
esac

# --- 4. apply ----------------------------------------------------------------------------------
if [[ "$changes" == true ]]; then
  if [[ "$auto_approve" != true ]]; then
    printf '\nApply this plan? Only "yes" applies it: '
    answer=""
    read -r answer || true
    if [[ "$answer" != yes ]]; then
      rm -f "$tf_dir/tfplan" # a plan file may hold sensitive values in clear text
      echo "Not applied."
      exit 1
    fi
  fi
  echo "==> terraform apply"
  terraform -chdir="$tf_dir" apply -input=false tfplan
else
  echo "==> no changes to apply"
fi
rm -f "$tf_dir/tfplan"

# --- 5. outputs and next steps -----------------------------------------------------------------
echo "==> outputs"
terraform -chdir="$tf_dir" output

cat <<EOF

Next steps (terraform/README.md "Deploy"):
  - Set the API key once (its value is never printed or stored by Terraform):
      aws ssm put-parameter --overwrite --type SecureString \\
        --name "\$(terraform -chdir=$tf_dir output -raw api_key_parameter_name)" --value "\$(openssl rand -hex 32)"
  - Upload the model packs:
      aws s3 sync ~/.insightface/models "\$(terraform -chdir=$tf_dir output -raw models_s3_uri)/models"
  - Confirm the subscription mail of each notification_emails address.
  - Send work:  scripts/publish-job.sh batch-job jobs/gpu_processing.py --project faces --experiment exp-1
                scripts/invoke.sh status
EOF
