#!/usr/bin/env bash
# Set (or rotate) the app's API key in its SSM SecureString parameter, keeping the parameter's KMS
# key. The key never appears on a command line or in Terraform. See terraform/README.md "API key".
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/set-api-key.sh [PARAMETER_NAME] [options]

Writes a new random key (32 random bytes, hex) to the API key parameter and prints it once on
stdout; with --stdin the key is read from standard input instead (one line) and not printed.

  PARAMETER_NAME      default: `terraform output -raw api_key_parameter_name` in $TF_DIR
                      (default: terraform/ of this repository)
Options:
  --stdin             read the key from standard input
  --endpoint-url URL  passed to the aws CLI (AWS_ENDPOINT_URL works too), e.g. a moto server
  --region REGION     passed to the aws CLI
  -h, --help          show this help

The app and the controller pick up a new key as README "API key rotation" describes.
EOF
}

die() {
  printf 'set-api-key.sh: %s\n' "$*" >&2
  exit 1
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
name="" from_stdin=false
aws_args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --stdin) from_stdin=true ;;
    --endpoint-url) [[ $# -ge 2 ]] || die "--endpoint-url needs a value"; aws_args+=(--endpoint-url "$2"); shift ;;
    --region) [[ $# -ge 2 ]] || die "--region needs a value"; aws_args+=(--region "$2"); shift ;;
    -*) usage >&2; die "unknown option $1" ;;
    *) [[ -z "$name" ]] || die "only one PARAMETER_NAME"; name=$1 ;;
  esac
  shift
done

if [[ -z "$name" ]]; then
  tf_dir=${TF_DIR:-$ROOT/terraform}
  name=$(terraform -chdir="$tf_dir" output -raw api_key_parameter_name 2>/dev/null) ||
    die "no PARAMETER_NAME given and \`terraform output api_key_parameter_name\` failed in $tf_dir"
fi
[[ "$name" =~ ^/?[A-Za-z0-9_.\/-]{1,1011}$ ]] || die "not an SSM parameter name: $name"

aws_() {
  aws ${aws_args[@]+"${aws_args[@]}"} "$@"
}

if [[ "$from_stdin" == true ]]; then
  IFS= read -r key || true
  [[ ${#key} -ge 16 ]] || die "the key read from stdin is shorter than 16 characters"
else
  key=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
fi
[[ "$key" != PLACEHOLDER* ]] || die "that is Terraform's placeholder, which the app refuses"

# The existing parameter's KMS key (the stack key): an overwrite without KeyId would switch to
# alias/aws/ssm, which the roles may not be allowed to use.
key_id=$(aws_ ssm describe-parameters --parameter-filters "Key=Name,Values=$name" \
  --query 'Parameters[0].KeyId' --output text) || die "cannot read parameter $name"
[[ -n "$key_id" && "$key_id" != None ]] || die "parameter $name does not exist (terraform apply creates it)"

# The value goes through a private file, never through argv (visible in ps).
request=$(mktemp)
trap 'rm -f "$request"' EXIT
chmod 600 "$request"
# printf is a shell builtin: the key reaches python on stdin, not on a command line.
printf '%s' "$key" | python3 -c 'import json, sys; json.dump({"Name": sys.argv[1], "KeyId": sys.argv[2], "Type": "SecureString", "Overwrite": True, "Value": sys.stdin.read()}, open(sys.argv[3], "w"))' \
  "$name" "$key_id" "$request" || die "python3 is needed to write the request"
version=$(aws_ ssm put-parameter --cli-input-json "file://$request" --query Version --output text)
echo "set-api-key.sh: $name is now version $version" >&2
if [[ "$from_stdin" != true ]]; then
  printf '%s\n' "$key"
fi
