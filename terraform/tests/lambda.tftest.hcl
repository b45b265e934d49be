# modules/lambda on its own: each function's role holds what its handler calls and nothing more,
# and the dispatcher learns the compute environments' limits.

mock_provider "aws" {
  source          = "./tests/mocks"
  override_during = plan
}

variables {
  name_prefix        = "face-embed-dev"
  build_dir          = "tests/fixtures/lambda"
  subnet_ids         = ["subnet-0123456789abcdef0"]
  security_group_ids = ["sg-0123456789abcdef0"]
  input_bucket_name  = "face-embed-dev-ml-input-123456789012"
  input_bucket_arn   = "arn:aws:s3:::face-embed-dev-ml-input-123456789012"
  output_bucket_name = "face-embed-dev-ml-output-123456789012"
  job_queue_names    = { gpu = "face-embed-dev-gpu-queue", cpu = "face-embed-dev-cpu-queue" }
  job_queue_arns = {
    gpu = "arn:aws:batch:us-east-1:123456789012:job-queue/face-embed-dev-gpu-queue"
    cpu = "arn:aws:batch:us-east-1:123456789012:job-queue/face-embed-dev-cpu-queue"
  }
  job_definition_names = {
    script_runner_gpu  = "face-embed-dev-script-runner-gpu"
    script_runner_cpu  = "face-embed-dev-script-runner-cpu"
    face_embedding_gpu = "face-embed-dev-face-embedding-gpu"
    face_embedding_cpu = "face-embed-dev-face-embedding-cpu"
  }
  job_definition_arn_prefixes = {
    script_runner_gpu  = "arn:aws:batch:us-east-1:123456789012:job-definition/face-embed-dev-script-runner-gpu"
    script_runner_cpu  = "arn:aws:batch:us-east-1:123456789012:job-definition/face-embed-dev-script-runner-cpu"
    face_embedding_gpu = "arn:aws:batch:us-east-1:123456789012:job-definition/face-embed-dev-face-embedding-gpu"
    face_embedding_cpu = "arn:aws:batch:us-east-1:123456789012:job-definition/face-embed-dev-face-embedding-cpu"
  }
  idempotency_table_name  = "face-embed-dev-idempotency"
  idempotency_table_arn   = "arn:aws:dynamodb:us-east-1:123456789012:table/face-embed-dev-idempotency"
  trigger_dlq_url         = "https://sqs.us-east-1.amazonaws.com/123456789012/face-embed-dev-trigger-dlq"
  trigger_dlq_arn         = "arn:aws:sqs:us-east-1:123456789012:face-embed-dev-trigger-dlq"
  monitor_dlq_arn         = "arn:aws:sqs:us-east-1:123456789012:face-embed-dev-monitor-dlq"
  notifications_topic_arn = "arn:aws:sns:us-east-1:123456789012:face-embed-dev-notifications"
  gpu_instance_id         = "i-0123456789abcdef0"
  gpu_instance_arn        = "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"
  api_key_parameter_name  = "/face-embed/dev/api-key"
  api_key_parameter_arn   = "arn:aws:ssm:us-east-1:123456789012:parameter/face-embed/dev/api-key"
  fallback_instance_types = ["g5.xlarge"]
  gpu_compute_max_vcpus   = 64
  cpu_compute_max_vcpus   = 256
}

run "functions_hold_only_what_they_call" {
  command = plan

  module {
    source = "./modules/lambda"
  }

  assert {
    condition     = !contains(flatten(data.aws_iam_policy_document.idle_stopper.statement[*].actions), "ssm:GetParameter")
    error_message = "The idle stopper only calls the app's open /health: it must not read the API key."
  }

  assert {
    condition = flatten([
      for statement in data.aws_iam_policy_document.controller.statement : statement.resources if contains(statement.actions, "ssm:GetParameter")
    ]) == ["arn:aws:ssm:us-east-1:123456789012:parameter/face-embed/dev/api-key"]
    error_message = "The controller reads the API key parameter and nothing else from SSM."
  }

  assert {
    condition = alltrue([
      for statement in data.aws_iam_policy_document.controller.statement :
      toset(statement.resources) == toset(["arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"]) && toset(one([
        for condition in statement.condition : condition if condition.variable == "ec2:InstanceType"
      ]).values) == toset(["g4dn.xlarge", "g5.xlarge"])
      if contains(statement.actions, "ec2:ModifyInstanceAttribute")
    ]) && contains(flatten(data.aws_iam_policy_document.controller.statement[*].actions), "ec2:ModifyInstanceAttribute")
    error_message = "ModifyInstanceAttribute must be limited to the GPU instance while it is one of the stack's GPU types: ${jsonencode(data.aws_iam_policy_document.controller.statement)}"
  }

  assert {
    condition = toset(flatten([
      for statement in data.aws_iam_policy_document.dispatcher.statement : statement.resources if contains(statement.actions, "s3:GetObject")
      ])) == toset([
      "arn:aws:s3:::face-embed-dev-ml-input-123456789012/jobs/*",
      "arn:aws:s3:::face-embed-dev-ml-input-123456789012/manifests/*",
    ])
    error_message = "The dispatcher may read scripts and manifests only, not every object of the input bucket."
  }

  assert {
    condition     = !contains(flatten(data.aws_iam_policy_document.monitor.statement[*].actions), "s3:GetObject")
    error_message = "The monitor reads no object."
  }

  assert {
    condition = (
      aws_lambda_function.this["dispatcher"].environment[0].variables["GPU_COMPUTE_MAX_VCPUS"] == "64" &&
      aws_lambda_function.this["dispatcher"].environment[0].variables["CPU_COMPUTE_MAX_VCPUS"] == "256"
    )
    error_message = "The dispatcher must know the compute environments' maxima to refuse jobs that could never run."
  }

  assert {
    condition     = aws_lambda_function.this["dispatcher"].environment[0].variables["INPUT_READ_PREFIXES"] == "jobs/,manifests/"
    error_message = "The dispatcher must refuse, up front, keys its role may not read."
  }
}

run "no_fallback_types_no_type_changes" {
  command = plan

  module {
    source = "./modules/lambda"
  }

  variables {
    fallback_instance_types = []
    input_read_prefixes     = []
  }

  assert {
    condition     = !contains(flatten(data.aws_iam_policy_document.controller.statement[*].actions), "ec2:ModifyInstanceAttribute")
    error_message = "Without fallback types the controller must not change the instance."
  }

  assert {
    condition     = !contains(flatten(data.aws_iam_policy_document.dispatcher.statement[*].actions), "s3:GetObject")
    error_message = "Without readable prefixes the dispatcher reads no object."
  }
}
