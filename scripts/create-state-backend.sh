#!/usr/bin/env bash
# Create the S3 bucket (versioned, encrypted, private, TLS only) and the DynamoDB lock table that
# hold the Terraform state, then print the matching `terraform init`. Idempotent: existing ones are
# kept and only their settings are (re)applied. See terraform/README.md "Terraform state".
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/create-state-backend.sh PREFIX REGION [options]

Creates, unless they exist:
  <PREFIX>-terraform-state  S3 bucket: versioning, SSE-KMS (AWS-managed key, Bucket Key), all public
                            access blocked, a policy that denies requests without TLS
  <PREFIX>-terraform-lock   DynamoDB table (LockID string hash key, on-demand, point-in-time recovery)
and prints the `terraform init -backend-config=...` that uses them.

Options:
  --bucket NAME       bucket name (default: <PREFIX>-terraform-state)
  --table NAME        lock table name (default: <PREFIX>-terraform-lock)
  --no-table          no lock table: Terraform >= 1.10 locks in S3 itself (use_lockfile=true)
  --endpoint-url URL  passed to the aws CLI (AWS_ENDPOINT_URL works too), e.g. a moto server
  -h, --help          show this help

Example:
  scripts/create-state-backend.sh face-embed us-east-1
EOF
}

die() {
  printf 'create-state-backend.sh: %s\n' "$*" >&2
  exit 1
}

prefix="" region="" bucket="" table="" with_table=true
aws_args=()
positionals=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --bucket) [[ $# -ge 2 ]] || die "--bucket needs a value"; bucket=$2; shift ;;
    --table) [[ $# -ge 2 ]] || die "--table needs a value"; table=$2; shift ;;
    --no-table) with_table=false ;;
    --endpoint-url) [[ $# -ge 2 ]] || die "--endpoint-url needs a value"; aws_args+=(--endpoint-url "$2"); shift ;;
    -*) usage >&2; die "unknown option $1" ;;
    *) positionals+=("$1") ;;
  esac
  shift
done
[[ ${#positionals[@]} -eq 2 ]] || { usage >&2; die "PREFIX and REGION are required"; }
prefix=${positionals[0]}
region=${positionals[1]}
[[ "$prefix" =~ ^[a-z0-9][a-z0-9-]{1,40}$ ]] || die "PREFIX must be 2-41 lowercase letters, digits or hyphens: $prefix"
[[ "$region" =~ ^[a-z]{2}(-gov)?-[a-z]+-[0-9]$ ]] || die "REGION must be a region code such as us-east-1: $region"
bucket=${bucket:-$prefix-terraform-state}
table=${table:-$prefix-terraform-lock}
[[ "$bucket" =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] || die "not a valid bucket name: $bucket"
[[ "$table" =~ ^[A-Za-z0-9_.-]{3,255}$ ]] || die "not a valid table name: $table"

aws_() {
  aws ${aws_args[@]+"${aws_args[@]}"} --region "$region" "$@"
}

# --- bucket ------------------------------------------------------------------------------------
if aws_ s3api head-bucket --bucket "$bucket" >/dev/null 2>&1; then
  echo "==> bucket s3://$bucket exists: applying its settings"
else
  echo "==> creating bucket s3://$bucket"
  if [[ "$region" == us-east-1 ]]; then
    aws_ s3api create-bucket --bucket "$bucket" >/dev/null
  else
    aws_ s3api create-bucket --bucket "$bucket" \
      --create-bucket-configuration "LocationConstraint=$region" >/dev/null
  fi
fi
aws_ s3api put-public-access-block --bucket "$bucket" --public-access-block-configuration \
  BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
aws_ s3api put-bucket-versioning --bucket "$bucket" --versioning-configuration Status=Enabled
aws_ s3api put-bucket-encryption --bucket "$bucket" --server-side-encryption-configuration \
  '{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"aws:kms"},"BucketKeyEnabled":true}]}'
policy=$(printf '{"Version":"2012-10-17","Statement":[{"Sid":"DenyInsecureTransport","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::%s","arn:aws:s3:::%s/*"],"Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}' "$bucket" "$bucket")
aws_ s3api put-bucket-policy --bucket "$bucket" --policy "$policy"

# --- lock table --------------------------------------------------------------------------------
lock_args=(-backend-config=use_lockfile=true)
if [[ "$with_table" == true ]]; then
  if aws_ dynamodb describe-table --table-name "$table" >/dev/null 2>&1; then
    echo "==> lock table $table exists"
  else
    echo "==> creating lock table $table"
    aws_ dynamodb create-table --table-name "$table" --billing-mode PAY_PER_REQUEST \
      --attribute-definitions AttributeName=LockID,AttributeType=S \
      --key-schema AttributeName=LockID,KeyType=HASH >/dev/null
    aws_ dynamodb wait table-exists --table-name "$table"
  fi
  aws_ dynamodb update-continuous-backups --table-name "$table" \
    --point-in-time-recovery-specification PointInTimeRecoveryEnabled=true >/dev/null
  lock_args=(-backend-config="dynamodb_table=$table")
fi

cat <<EOF

State backend ready. Initialise terraform/ with:

  terraform -chdir=terraform init -backend-config=bucket=$bucket -backend-config=region=$region ${lock_args[*]}

(Terraform >= 1.10 can lock in S3 itself: -backend-config=use_lockfile=true instead of the table.)
EOF
