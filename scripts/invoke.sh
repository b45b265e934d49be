#!/usr/bin/env bash
# Invoke the controller Lambda directly and print its answer: start, stop or status of the GPU
# instance, or start it and process images. See scripts/README.md and lambdas/README.md.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/invoke.sh start|stop|status [OPTIONS]
       scripts/invoke.sh process KEY... [--collection NAME] [OPTIONS]

Invokes the controller function synchronously (it waits for the instance and the app, up to its
15-minute timeout) and prints its JSON answer: instance id, state, timings, and for `status` the
app's /health; for `process` (start_and_process) the per-file results.

Options:
  --function NAME     default: $CONTROLLER_FUNCTION_NAME, else
                      `terraform output -raw controller_function_name` in $TF_DIR (default: terraform/)
  --endpoint-url URL  passed to the aws CLI (AWS_ENDPOINT_URL works too), e.g. the local stack
  --region REGION     passed to the aws CLI
  --dry-run           print the payload and invoke nothing
  -h, --help          show this help

Exit status: 0 when the function succeeded, 1 when it raised (its error is printed) or the call failed.
To go through the trigger topic instead (asynchronous): scripts/publish-job.sh gpu-instance ACTION.
EOF
}

die() {
  printf 'invoke.sh: %s\n' "$*" >&2
  exit 1
}

bad_usage() {
  printf 'invoke.sh: %s\n\n' "$*" >&2
  usage >&2
  exit 2
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT

if [[ $# -eq 0 ]]; then
  usage >&2
  exit 2
fi

function_name="" endpoint_url="" region="" collection="" dry_run=false
positionals=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --dry-run) dry_run=true; shift; continue ;;
    --*)
      [[ $# -ge 2 ]] || bad_usage "$1 needs a value"
      case "$1" in
        --function) function_name=$2 ;;
        --endpoint-url) endpoint_url=$2 ;;
        --region) region=$2 ;;
        --collection) collection=$2 ;;
        *) bad_usage "unknown option $1" ;;
      esac
      shift 2
      ;;
    *) positionals+=("$1"); shift ;;
  esac
done

[[ ${#positionals[@]} -ge 1 ]] || bad_usage "missing action"
action=${positionals[0]}
case "$action" in
  start | stop | status)
    [[ ${#positionals[@]} -eq 1 ]] || bad_usage "$action takes no further arguments"
    [[ -z "$collection" ]] || bad_usage "--collection is for process only"
    ;;
  process)
    [[ ${#positionals[@]} -ge 2 ]] || bad_usage "process needs at least one KEY"
    ;;
  *) bad_usage "unknown action '$action' (start, stop, status or process)" ;;
esac

command -v python3 >/dev/null || die "python3 is needed to build the JSON payload"
# The controller's event (lambdas/README.md "Controller"), built by json.dumps: any key is safe.
payload=$(python3 -c '
import json, sys

action, collection, keys = sys.argv[1], sys.argv[2], sys.argv[3:]
if action == "process":
    event = {"action": "start_and_process", "payload": {"files": keys}}
    if collection:
        event["payload"]["collection"] = collection
else:
    event = {"action": action}
print(json.dumps(event))
' "$action" "$collection" "${positionals[@]:1}")

if [[ "$dry_run" == true ]]; then
  printf '%s\n' "$payload"
  exit 0
fi

if [[ -z "$function_name" ]]; then
  function_name=${CONTROLLER_FUNCTION_NAME:-}
fi
if [[ -z "$function_name" ]]; then
  tf_dir=${TF_DIR:-$ROOT/terraform}
  command -v terraform >/dev/null ||
    die "no function: pass --function, set CONTROLLER_FUNCTION_NAME, or install terraform to read its output"
  function_name=$(terraform -chdir="$tf_dir" output -raw controller_function_name) ||
    die "no function: 'terraform output -raw controller_function_name' failed in $tf_dir (pass --function)"
fi

aws_args=()
[[ -n "$endpoint_url" ]] && aws_args+=(--endpoint-url "$endpoint_url")
[[ -n "$region" ]] && aws_args+=(--region "$region")

workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT
printf '%s' "$payload" >"$workdir/payload.json"

echo "invoking $function_name: $payload" >&2
# fileb:// passes the bytes as they are with AWS CLI v1 and v2 (v2 would base64-decode a string).
# The read timeout covers the controller's 15 minutes.
aws ${aws_args[@]+"${aws_args[@]}"} lambda invoke --function-name "$function_name" \
  --payload "fileb://$workdir/payload.json" --cli-read-timeout 960 --output json \
  "$workdir/response.json" >"$workdir/meta.json"

python3 -c '
import json, sys

meta = json.load(open(sys.argv[1]))
raw = open(sys.argv[2], "rb").read().decode("utf-8", "replace")
try:
    print(json.dumps(json.loads(raw), indent=2))
except ValueError:
    print(raw)
error = meta.get("FunctionError")
if error:
    print("invoke.sh: the function failed (" + error + ")", file=sys.stderr)
    sys.exit(1)
' "$workdir/meta.json" "$workdir/response.json"
