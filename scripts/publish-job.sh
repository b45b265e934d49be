#!/usr/bin/env bash
# Publish a work trigger (the dispatcher's message format, lambdas/README.md) to the trigger topic.
# See scripts/README.md.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/publish-job.sh COMMAND [ARGS] [OPTIONS]

Commands (the dispatcher's triggers, lambdas/README.md):
  batch-job SCRIPT_KEY            run a script of the input bucket as a Batch job
      [--cpu | --gpu] [--vcpus N] [--memory MiB] [--gpus N]
  face-embedding --prefix PREFIX | --manifest-key KEY
      [--collection NAME] [--images-per-child N] [--cpu | --gpu] [--vcpus N] [--memory MiB] [--gpus N]
  gpu-instance start|stop|status  ask the controller (asynchronously) to start/stop/report the instance
  gpu-instance process KEY... [--collection NAME]
                                  start the instance and embed these input-bucket keys

Metadata (any command):
  --user USER (default: $USER)  --project NAME  --experiment NAME  --idempotency-key KEY

Options:
  --topic-arn ARN     default: $TRIGGER_TOPIC_ARN, else `terraform output -raw trigger_events_topic_arn`
                      in $TF_DIR (default: terraform/ of this repository)
  --endpoint-url URL  passed to the aws CLI (AWS_ENDPOINT_URL works too), e.g. a moto server
  --region REGION     passed to the aws CLI
  --dry-run           print the message and publish nothing
  -h, --help          show this help

Examples:
  scripts/publish-job.sh batch-job jobs/gpu_processing.py --user alice --project faces --experiment exp-42
  scripts/publish-job.sh batch-job jobs/cpu_processing.py --cpu --vcpus 2 --memory 4096
  scripts/publish-job.sh face-embedding --prefix photos/2024/ --collection hall
  scripts/publish-job.sh gpu-instance start
EOF
}

die() {
  printf 'publish-job.sh: %s\n' "$*" >&2
  exit 1
}

bad_usage() {
  printf 'publish-job.sh: %s\n\n' "$*" >&2
  usage >&2
  exit 2
}

positive_int() { # NAME VALUE
  [[ "$2" =~ ^[1-9][0-9]{0,8}$ ]] || bad_usage "$1 must be a positive integer (got '$2')"
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT

if [[ $# -eq 0 ]]; then
  usage >&2
  exit 2
fi

command="" compute="" topic_arn="" endpoint_url="" region="" dry_run=false
prefix="" manifest_key="" collection="" images_per_child="" vcpus="" memory="" gpus=""
user="${USER:-$(id -un 2>/dev/null || echo unknown)}" project="" experiment="" idempotency_key=""
positionals=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --dry-run) dry_run=true; shift; continue ;;
    --cpu | --gpu) compute=${1#--}; shift; continue ;;
    --*)
      [[ $# -ge 2 ]] || bad_usage "$1 needs a value"
      case "$1" in
        --topic-arn) topic_arn=$2 ;;
        --endpoint-url) endpoint_url=$2 ;;
        --region) region=$2 ;;
        --prefix) prefix=$2 ;;
        --manifest-key) manifest_key=$2 ;;
        --collection) collection=$2 ;;
        --images-per-child) positive_int "$1" "$2"; images_per_child=$2 ;;
        --vcpus) positive_int "$1" "$2"; vcpus=$2 ;;
        --memory) positive_int "$1" "$2"; memory=$2 ;;
        --gpus) positive_int "$1" "$2"; gpus=$2 ;;
        --user) user=$2 ;;
        --project) project=$2 ;;
        --experiment) experiment=$2 ;;
        --idempotency-key) idempotency_key=$2 ;;
        *) bad_usage "unknown option $1" ;;
      esac
      shift 2
      ;;
    *)
      if [[ -z "$command" ]]; then command=$1; else positionals+=("$1"); fi
      shift
      ;;
  esac
done

# Fields of the message as TYPE:PATH=VALUE (s string, i integer, a list item), assembled by
# python3 below: no JSON is ever built by string concatenation, so any value is safe.
fields=()
resource_fields() {
  fields+=("s:data.compute_type=${compute:-gpu}")
  [[ -n "$vcpus" ]] && fields+=("i:data.vcpus=$vcpus")
  [[ -n "$memory" ]] && fields+=("i:data.memory=$memory")
  if [[ -n "$gpus" ]]; then
    [[ "$compute" != cpu ]] || bad_usage "--gpus is for GPU jobs only (not with --cpu)"
    fields+=("i:data.gpus=$gpus")
  fi
  return 0
}

case "$command" in
  batch-job)
    trigger=batch_job
    [[ ${#positionals[@]} -eq 1 ]] || bad_usage "batch-job takes exactly one SCRIPT_KEY"
    fields+=("s:data.script_key=${positionals[0]}")
    resource_fields
    ;;
  face-embedding)
    trigger=face_embedding
    [[ ${#positionals[@]} -eq 0 ]] || bad_usage "face-embedding takes no positional arguments (use --prefix or --manifest-key)"
    if [[ -n "$prefix" && -z "$manifest_key" ]]; then
      fields+=("s:data.prefix=$prefix")
    elif [[ -n "$manifest_key" && -z "$prefix" ]]; then
      fields+=("s:data.manifest_key=$manifest_key")
    else
      bad_usage "face-embedding needs exactly one of --prefix and --manifest-key"
    fi
    [[ -n "$collection" ]] && fields+=("s:data.collection=$collection")
    [[ -n "$images_per_child" ]] && fields+=("i:data.images_per_child=$images_per_child")
    resource_fields
    ;;
  gpu-instance)
    trigger=gpu_instance
    [[ ${#positionals[@]} -ge 1 ]] || bad_usage "gpu-instance needs an action: start, stop, status or process"
    action=${positionals[0]}
    case "$action" in
      start | stop | status)
        [[ ${#positionals[@]} -eq 1 ]] || bad_usage "gpu-instance $action takes no further arguments"
        fields+=("s:data.action=$action")
        ;;
      process)
        [[ ${#positionals[@]} -ge 2 ]] || bad_usage "gpu-instance process needs at least one KEY"
        fields+=("s:data.action=start_and_process")
        for key in "${positionals[@]:1}"; do
          fields+=("a:data.payload.files=$key")
        done
        [[ -n "$collection" ]] && fields+=("s:data.payload.collection=$collection")
        ;;
      *) bad_usage "unknown gpu-instance action '$action' (start, stop, status or process)" ;;
    esac
    ;;
  "") bad_usage "missing COMMAND" ;;
  *) bad_usage "unknown command '$command'" ;;
esac

[[ -n "$user" ]] && fields+=("s:metadata.user=$user")
[[ -n "$project" ]] && fields+=("s:metadata.project=$project")
[[ -n "$experiment" ]] && fields+=("s:metadata.experiment=$experiment")
[[ -n "$idempotency_key" ]] && fields+=("s:idempotency_key=$idempotency_key")

command -v python3 >/dev/null || die "python3 is needed to build the JSON message"
message=$(python3 -c '
import json, sys

message = {"trigger_type": sys.argv[1], "data": {}}
for field in sys.argv[2:]:
    kind, _, rest = field.partition(":")
    path, _, value = rest.partition("=")
    *parents, leaf = path.split(".")
    node = message
    for name in parents:
        node = node.setdefault(name, {})
    if kind == "a":
        node.setdefault(leaf, []).append(value)
    else:
        node[leaf] = int(value) if kind == "i" else value
print(json.dumps(message))
' "$trigger" "${fields[@]}")

if [[ "$dry_run" == true ]]; then
  printf '%s\n' "$message"
  exit 0
fi

# --- topic and publish -------------------------------------------------------------------------
if [[ -z "$topic_arn" ]]; then
  topic_arn=${TRIGGER_TOPIC_ARN:-}
fi
if [[ -z "$topic_arn" ]]; then
  tf_dir=${TF_DIR:-$ROOT/terraform}
  command -v terraform >/dev/null ||
    die "no topic: pass --topic-arn, set TRIGGER_TOPIC_ARN, or install terraform to read its output"
  topic_arn=$(terraform -chdir="$tf_dir" output -raw trigger_events_topic_arn) ||
    die "no topic: 'terraform output -raw trigger_events_topic_arn' failed in $tf_dir (pass --topic-arn)"
fi
[[ "$topic_arn" == arn:*:sns:* ]] || die "'$topic_arn' is not an SNS topic ARN"

aws_args=()
[[ -n "$endpoint_url" ]] && aws_args+=(--endpoint-url "$endpoint_url")
[[ -n "$region" ]] && aws_args+=(--region "$region")

printf 'message: %s\n' "$message"
message_id=$(aws sns publish ${aws_args[@]+"${aws_args[@]}"} --topic-arn "$topic_arn" \
  --message "$message" --query MessageId --output text)
printf 'published %s to %s: MessageId %s\n' "$trigger" "$topic_arn" "$message_id"
