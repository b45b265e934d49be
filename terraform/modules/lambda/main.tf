data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  # Names (terraform/naming.json).
  function_names = {
    dispatcher   = "${var.name_prefix}-dispatcher"
    controller   = "${var.name_prefix}-controller"
    monitor      = "${var.name_prefix}-monitor"
    idle_stopper = "${var.name_prefix}-idle-stopper"
  }
  function_arns = {
    for key, name in local.function_names : key => "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${name}"
  }

  functions = {
    dispatcher = {
      description = "Turns trigger messages into Batch jobs (SNS trigger topic -> Batch)"
      handler     = "lambdas.dispatcher.handler.lambda_handler"
      in_vpc      = false
      dlq_arn     = var.trigger_dlq_arn
    }
    controller = {
      description = "Starts the GPU instance, waits for the app and forwards requests to it"
      handler     = "lambdas.controller.handler.lambda_handler"
      in_vpc      = true
      dlq_arn     = var.trigger_dlq_arn
    }
    monitor = {
      description = "Reports Batch job state changes to the notifications topic"
      handler     = "lambdas.monitor.handler.lambda_handler"
      in_vpc      = false
      dlq_arn     = var.monitor_dlq_arn
    }
    idle_stopper = {
      description = "Stops the GPU instance once the app has been idle for AUTO_SHUTDOWN_IDLE_TIME"
      handler     = "lambdas.idle_stopper.handler.lambda_handler"
      in_vpc      = true
      dlq_arn     = var.monitor_dlq_arn
    }
  }

  # Exactly the variables each handler reads: lambdas/common/env.py is the source of truth and
  # tests/terraform/test_structure.py compares the two.
  environment = {
    dispatcher = {
      POWERTOOLS_SERVICE_NAME   = "dispatcher"
      POWERTOOLS_LOG_LEVEL      = var.log_level
      ML_INPUT_BUCKET           = var.input_bucket_name
      ML_OUTPUT_BUCKET          = var.output_bucket_name
      GPU_JOB_QUEUE             = var.job_queue_names["gpu"]
      CPU_JOB_QUEUE             = var.job_queue_names["cpu"]
      SCRIPT_JOB_DEFINITION_GPU = var.job_definition_names["script_runner_gpu"]
      SCRIPT_JOB_DEFINITION_CPU = var.job_definition_names["script_runner_cpu"]
      EMBED_JOB_DEFINITION_GPU  = var.job_definition_names["face_embedding_gpu"]
      EMBED_JOB_DEFINITION_CPU  = var.job_definition_names["face_embedding_cpu"]
      DEFAULT_GPU_VCPUS         = tostring(var.gpu_job_vcpus)
      DEFAULT_GPU_MEMORY        = tostring(var.gpu_job_memory)
      DEFAULT_GPU_GPUS          = tostring(var.gpu_job_gpus)
      DEFAULT_CPU_VCPUS         = tostring(var.cpu_job_vcpus)
      DEFAULT_CPU_MEMORY        = tostring(var.cpu_job_memory)
      MAX_VCPUS                 = tostring(var.job_max_vcpus)
      GPU_COMPUTE_MAX_VCPUS     = tostring(var.gpu_compute_max_vcpus)
      CPU_COMPUTE_MAX_VCPUS     = tostring(var.cpu_compute_max_vcpus)
      MAX_MEMORY                = tostring(var.job_max_memory)
      MAX_GPUS                  = tostring(var.job_max_gpus)
      MIN_MEMORY                = tostring(var.job_min_memory)
      IMAGES_PER_CHILD          = tostring(var.images_per_child)
      INPUT_READ_PREFIXES       = join(",", var.input_read_prefixes)
      S3_EVENT_PREFIX           = var.s3_event_prefix
      EVENT_BATCH_THRESHOLD     = tostring(var.event_batch_threshold)
      VIDEO_INSTANCE_MAX_BYTES  = tostring(var.video_instance_max_bytes)
      CONTROLLER_FUNCTION_NAME  = local.function_names["controller"]
      IDEMPOTENCY_TABLE         = var.idempotency_table_name
      DEAD_LETTER_QUEUE_URL     = var.trigger_dlq_url
    }
    controller = {
      POWERTOOLS_SERVICE_NAME = "controller"
      POWERTOOLS_LOG_LEVEL    = var.log_level
      GPU_INSTANCE_ID         = var.gpu_instance_id
      APP_PORT                = tostring(var.app_port)
      APP_URL_OVERRIDE        = ""
      API_KEY_PARAMETER       = var.api_key_parameter_name
      START_TIMEOUT_SECONDS   = tostring(var.start_timeout_seconds)
      HEALTH_TIMEOUT_SECONDS  = tostring(var.health_timeout_seconds)
      NOTIFICATIONS_TOPIC_ARN = var.notifications_topic_arn
      FALLBACK_INSTANCE_TYPES = join(",", var.fallback_instance_types)
    }
    monitor = {
      POWERTOOLS_SERVICE_NAME = "monitor"
      POWERTOOLS_LOG_LEVEL    = var.log_level
      NOTIFICATIONS_TOPIC_ARN = var.notifications_topic_arn
    }
    idle_stopper = {
      POWERTOOLS_SERVICE_NAME   = "idle_stopper"
      POWERTOOLS_LOG_LEVEL      = var.log_level
      GPU_INSTANCE_ID           = var.gpu_instance_id
      APP_PORT                  = tostring(var.app_port)
      APP_URL_OVERRIDE          = ""
      AUTO_SHUTDOWN_IDLE_TIME   = tostring(var.auto_shutdown_idle_time)
      UNREACHABLE_GRACE_SECONDS = tostring(var.unreachable_grace_seconds)
      NOTIFICATIONS_TOPIC_ARN   = var.notifications_topic_arn
    }
  }

  packages = { for key in keys(local.functions) : key => "${var.build_dir}/${key}.zip" }

  job_definition_resources = flatten([
    for prefix in values(var.job_definition_arn_prefixes) : [prefix, "${prefix}:*"]
  ])
}

################################################################################
# Log groups
################################################################################

resource "aws_cloudwatch_log_group" "this" {
  for_each = local.function_names

  name              = "/aws/lambda/${each.value}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn

  tags = var.tags
}

################################################################################
# IAM: one role per function, each with only what its handler calls
################################################################################

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "this" {
  for_each = local.function_names

  name               = each.value
  description        = "Execution role of the ${each.value} Lambda"
  assume_role_policy = data.aws_iam_policy_document.assume.json

  tags = var.tags
}

# What every function needs: its own log group, its dead-letter queue, the stack key (environment
# variables, encrypted topics, SecureString parameters, SSE-KMS objects).
data "aws_iam_policy_document" "base" {
  for_each = local.functions

  statement {
    sid       = "WriteOwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this[each.key].arn}:*"]
  }

  statement {
    sid       = "DeadLetterQueue"
    actions   = ["sqs:SendMessage"]
    resources = [each.value.dlq_arn]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn != null ? [1] : []

    content {
      sid       = "UseTheStackKey"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [var.kms_key_arn]
    }
  }
}

data "aws_iam_policy_document" "dispatcher" {
  source_policy_documents = [data.aws_iam_policy_document.base["dispatcher"].json]

  statement {
    sid       = "SubmitJobsToOwnQueuesAndDefinitions"
    actions   = ["batch:SubmitJob"]
    resources = concat(values(var.job_queue_arns), local.job_definition_resources)
  }

  statement {
    sid       = "CountImagesInTheInputBucket"
    actions   = ["s3:ListBucket"]
    resources = [var.input_bucket_arn]
  }

  dynamic "statement" {
    # Scripts (batch_job) and manifests (face_embedding) only: never the app's uploads.
    for_each = length(var.input_read_prefixes) > 0 ? [1] : []

    content {
      sid       = "ReadScriptsAndManifests"
      actions   = ["s3:GetObject"]
      resources = [for prefix in var.input_read_prefixes : "${var.input_bucket_arn}/${prefix}*"]
    }
  }

  statement {
    # The manifest of a large group of uploaded images (lambdas/dispatcher/s3_events.py).
    sid       = "WriteEventManifests"
    actions   = ["s3:PutObject"]
    resources = ["${var.input_bucket_arn}/manifests/s3-events/*"]
  }

  statement {
    sid       = "IdempotencyRecords"
    actions   = ["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    resources = [var.idempotency_table_arn]
  }

  statement {
    sid       = "InvokeController"
    actions   = ["lambda:InvokeFunction"]
    resources = [local.function_arns["controller"], "${local.function_arns["controller"]}:*"]
  }
}

data "aws_iam_policy_document" "controller" {
  source_policy_documents = [data.aws_iam_policy_document.base["controller"].json]

  statement {
    sid       = "StartAndStopTheGpuInstance"
    actions   = ["ec2:StartInstances", "ec2:StopInstances"]
    resources = [var.gpu_instance_arn]
  }

  dynamic "statement" {
    for_each = length(var.fallback_instance_types) > 0 ? [1] : []

    content {
      # Switch to a fallback type when the preferred one has no capacity (the instance is stopped):
      # only this instance, and only while it is one of the stack's GPU types.
      sid       = "ChangeTheGpuInstanceType"
      actions   = ["ec2:ModifyInstanceAttribute"]
      resources = [var.gpu_instance_arn]

      condition {
        test     = "StringEquals"
        variable = "ec2:InstanceType"
        values   = distinct(concat([var.gpu_instance_type], var.fallback_instance_types))
      }
    }
  }

  statement {
    # Describe* actions have no resource-level permissions: AWS requires "*".
    sid       = "DescribeInstances"
    actions   = ["ec2:DescribeInstanceStatus", "ec2:DescribeInstances"]
    resources = ["*"]
  }

  statement {
    sid       = "ReadApiKey"
    actions   = ["ssm:GetParameter"]
    resources = [var.api_key_parameter_arn]
  }

  statement {
    sid       = "Notify"
    actions   = ["sns:Publish"]
    resources = [var.notifications_topic_arn]
  }
}

data "aws_iam_policy_document" "monitor" {
  source_policy_documents = [data.aws_iam_policy_document.base["monitor"].json]

  statement {
    sid       = "Notify"
    actions   = ["sns:Publish"]
    resources = [var.notifications_topic_arn]
  }
}

data "aws_iam_policy_document" "idle_stopper" {
  source_policy_documents = [data.aws_iam_policy_document.base["idle_stopper"].json]

  statement {
    sid       = "StopTheGpuInstance"
    actions   = ["ec2:StopInstances"]
    resources = [var.gpu_instance_arn]
  }

  statement {
    # Describe* actions have no resource-level permissions: AWS requires "*".
    sid       = "DescribeInstances"
    actions   = ["ec2:DescribeInstanceStatus", "ec2:DescribeInstances"]
    resources = ["*"]
  }

  # No API key: the idle stopper only reads the app's open /health.
  statement {
    sid       = "Notify"
    actions   = ["sns:Publish"]
    resources = [var.notifications_topic_arn]
  }
}

locals {
  policies = {
    dispatcher   = data.aws_iam_policy_document.dispatcher.json
    controller   = data.aws_iam_policy_document.controller.json
    monitor      = data.aws_iam_policy_document.monitor.json
    idle_stopper = data.aws_iam_policy_document.idle_stopper.json
  }
}

resource "aws_iam_role_policy" "this" {
  for_each = local.function_names

  name   = "function"
  role   = aws_iam_role.this[each.key].id
  policy = local.policies[each.key]
}

# Network interfaces of the functions that run in the VPC (controller, idle stopper).
data "aws_iam_policy_document" "vpc_access" {
  # checkov:skip=CKV_AWS_111:Lambda manages its VPC network interfaces itself and checks the execution role for these EC2 actions on "*" (as in AWSLambdaVPCAccessExecutionRole); only the two in-VPC functions get this policy.
  # checkov:skip=CKV_AWS_356:Lambda manages its VPC network interfaces itself and checks the execution role for these EC2 actions on "*" (as in AWSLambdaVPCAccessExecutionRole); only the two in-VPC functions get this policy.
  statement {
    sid = "ManageFunctionNetworkInterfaces"
    actions = [
      "ec2:AssignPrivateIpAddresses",
      "ec2:CreateNetworkInterface",
      "ec2:DeleteNetworkInterface",
      "ec2:DescribeNetworkInterfaces",
      "ec2:DescribeSubnets",
      "ec2:UnassignPrivateIpAddresses",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "vpc_access" {
  for_each = { for key, function in local.functions : key => function if function.in_vpc }

  name   = "vpc-network-interfaces"
  role   = aws_iam_role.this[each.key].id
  policy = data.aws_iam_policy_document.vpc_access.json
}

# X-Ray segments (PutTraceSegments/PutTelemetryRecords take no resource scoping).
resource "aws_iam_role_policy_attachment" "xray" {
  for_each = var.tracing_mode == "Active" ? local.function_names : {}

  role       = aws_iam_role.this[each.key].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"
}

################################################################################
# Functions
################################################################################

resource "aws_lambda_function" "this" {
  # checkov:skip=CKV_AWS_272:The packages are built locally by make package; code signing needs an AWS Signer profile and a signing step this project does not have.
  for_each = local.functions

  function_name    = local.function_names[each.key]
  description      = each.value.description
  role             = aws_iam_role.this[each.key].arn
  runtime          = "python3.12"
  handler          = each.value.handler
  architectures    = [var.architecture]
  filename         = local.packages[each.key]
  source_code_hash = try(filebase64sha256(local.packages[each.key]), null)
  memory_size      = var.memory_size[each.key]
  timeout          = var.timeout[each.key]
  kms_key_arn      = var.kms_key_arn

  reserved_concurrent_executions = lookup(var.reserved_concurrent_executions, each.key, -1)

  environment {
    variables = local.environment[each.key]
  }

  dead_letter_config {
    target_arn = each.value.dlq_arn
  }

  tracing_config {
    mode = var.tracing_mode
  }

  dynamic "vpc_config" {
    for_each = each.value.in_vpc ? [1] : []

    content {
      subnet_ids         = var.subnet_ids
      security_group_ids = var.security_group_ids
    }
  }

  tags = merge(var.tags, { Name = local.function_names[each.key] })

  lifecycle {
    precondition {
      condition     = fileexists(local.packages[each.key])
      error_message = "${local.packages[each.key]} does not exist: run `make package` first (or set lambda_build_dir)."
    }

    precondition {
      condition     = each.key != "controller" || var.timeout["controller"] >= var.start_timeout_seconds + var.health_timeout_seconds
      error_message = "The controller's timeout must cover start_timeout_seconds + health_timeout_seconds."
    }
  }

  depends_on = [
    aws_cloudwatch_log_group.this,
    aws_iam_role_policy.this,
    aws_iam_role_policy.vpc_access,
  ]
}

resource "aws_lambda_function_event_invoke_config" "this" {
  for_each = aws_lambda_function.this

  function_name                = each.value.function_name
  maximum_retry_attempts       = var.async_retry_attempts[each.key]
  maximum_event_age_in_seconds = var.async_max_event_age_seconds
}

################################################################################
# EventBridge: Batch job state changes -> monitor, schedule -> idle stopper
################################################################################

resource "aws_cloudwatch_event_rule" "batch_job_state" {
  name        = "${var.name_prefix}-batch-job-state"
  description = "Batch Job State Change events of this stack's job queues, for the monitor"

  event_pattern = jsonencode({
    source        = ["aws.batch"]
    "detail-type" = ["Batch Job State Change"]
    detail = {
      jobQueue = values(var.job_queue_arns)
    }
  })

  tags = var.tags
}

resource "aws_cloudwatch_event_target" "monitor" {
  rule      = aws_cloudwatch_event_rule.batch_job_state.name
  target_id = "monitor"
  arn       = aws_lambda_function.this["monitor"].arn

  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 10
  }

  dead_letter_config {
    arn = var.monitor_dlq_arn
  }
}

resource "aws_lambda_permission" "events_invoke_monitor" {
  statement_id  = "AllowBatchJobStateRule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this["monitor"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.batch_job_state.arn
}

resource "aws_cloudwatch_event_rule" "idle_check" {
  name                = "${var.name_prefix}-idle-check"
  description         = "Runs the idle stopper, which stops the GPU instance after AUTO_SHUTDOWN_IDLE_TIME without work"
  schedule_expression = var.idle_check_schedule

  tags = var.tags
}

resource "aws_cloudwatch_event_target" "idle_stopper" {
  rule      = aws_cloudwatch_event_rule.idle_check.name
  target_id = "idle-stopper"
  arn       = aws_lambda_function.this["idle_stopper"].arn

  # A missed check is made up by the next one: no retries, stale checks are dropped.
  retry_policy {
    maximum_event_age_in_seconds = 300
    maximum_retry_attempts       = 0
  }

  dead_letter_config {
    arn = var.monitor_dlq_arn
  }
}

resource "aws_lambda_permission" "events_invoke_idle_stopper" {
  statement_id  = "AllowIdleCheckSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this["idle_stopper"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.idle_check.arn
}
