data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  # Names (terraform/naming.json).
  queue_names = {
    gpu = "${var.name_prefix}-gpu-queue"
    cpu = "${var.name_prefix}-cpu-queue"
  }
  job_definition_names = {
    script_runner_gpu  = "${var.name_prefix}-script-runner-gpu"
    script_runner_cpu  = "${var.name_prefix}-script-runner-cpu"
    face_embedding_gpu = "${var.name_prefix}-face-embedding-gpu"
    face_embedding_cpu = "${var.name_prefix}-face-embedding-cpu"
  }
  log_group_name = "/aws/batch/${var.name_prefix}"

  compute = {
    gpu = {
      use_spot          = var.gpu_use_spot_instances
      instance_types    = var.gpu_instance_types
      max_vcpus         = var.gpu_max_vcpus
      image_type        = var.gpu_image_type
      image_id_override = var.gpu_image_id_override
    }
    cpu = {
      use_spot          = var.cpu_use_spot_instances
      instance_types    = var.cpu_instance_types
      max_vcpus         = var.cpu_max_vcpus
      image_type        = var.cpu_image_type
      image_id_override = var.cpu_image_id_override
    }
  }

  job_definitions = {
    script_runner_gpu  = { compute = "gpu", command = ["python", "-m", "gpu_app.batch", "run-script"] }
    script_runner_cpu  = { compute = "cpu", command = ["python", "-m", "gpu_app.batch", "run-script"] }
    face_embedding_gpu = { compute = "gpu", command = ["python", "-m", "gpu_app.batch", "embed"] }
    face_embedding_cpu = { compute = "cpu", command = ["python", "-m", "gpu_app.batch", "embed"] }
  }

  # Batch takes resourceRequirements values as strings.
  resource_requirements = {
    gpu = [
      { type = "VCPU", value = tostring(var.gpu_job_vcpus) },
      { type = "MEMORY", value = tostring(var.gpu_job_memory) },
      { type = "GPU", value = tostring(var.gpu_job_gpus) },
    ]
    cpu = [
      { type = "VCPU", value = tostring(var.cpu_job_vcpus) },
      { type = "MEMORY", value = tostring(var.cpu_job_memory) },
    ]
  }

  # Settings the gpu_app image reads (gpu_app/config.py). Empty values are left out: Batch drops
  # them, and keeping them would show a difference on every plan.
  common_environment = {
    ML_INPUT_BUCKET  = var.input_bucket_name
    ML_OUTPUT_BUCKET = var.output_bucket_name
    MODEL_ROOT       = "/models"
    MODEL_PACK       = var.model_pack
    MODELS_S3_URI    = "s3://${var.models_bucket_name}/${var.models_s3_prefix}"
    DET_SIZE         = tostring(var.det_size)
    STORAGE_BACKEND  = "s3"
    S3_BUCKET_NAME   = var.input_bucket_name
    S3_UPLOAD_PATH   = var.s3_upload_path
    AWS_REGION       = local.region
    VECTOR_INDEX     = var.vector_index
    INDEX_NAME       = var.index_name
    ES_HOSTS         = var.es_hosts
    ES_SECRET_NAME   = local.es_secret_name
  }
  job_environment = {
    gpu = merge(local.common_environment, { EXECUTION_PROVIDER = var.gpu_execution_provider, REQUIRE_GPU = "true" })
    cpu = merge(local.common_environment, { EXECUTION_PROVIDER = "cpu", REQUIRE_GPU = "false" })
  }

  # Jobs stuck RUNNABLE for these reasons are cancelled after runnable_timeout_seconds, with the
  # reason in the job's status (the monitor Lambda reports it).
  runnable_cancel_reasons = [
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
  ]

  # Jobs run users' scripts: they get the Elasticsearch credentials (SSM, or secretsmanager:<id> /
  # an ARN in Secrets Manager, as gpu_app/secret_store.py reads them) and never the app's API key.
  es_secret_name              = var.es_secret_ssm_parameter_name == null ? "" : var.es_secret_ssm_parameter_name
  es_secret_in_secretsmanager = startswith(local.es_secret_name, "secretsmanager:") || strcontains(local.es_secret_name, ":secretsmanager:")
  es_secret_id                = trimprefix(local.es_secret_name, "secretsmanager:")
  parameter_arns = local.es_secret_name == "" || local.es_secret_in_secretsmanager ? [] : [
    "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/${trimprefix(local.es_secret_name, "/")}"
  ]
  # Secrets Manager appends six random characters to a secret's name in its ARN.
  secret_arns = local.es_secret_in_secretsmanager ? [
    startswith(local.es_secret_id, "arn:") ? local.es_secret_id : "arn:${local.partition}:secretsmanager:${local.region}:${local.account_id}:secret:${local.es_secret_id}-??????"
  ] : []
}

################################################################################
# Logs
################################################################################

resource "aws_cloudwatch_log_group" "this" {
  name              = local.log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn

  tags = var.tags
}

################################################################################
# Instance role (ECS container instances)
################################################################################

data "aws_iam_policy_document" "instance_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "instance" {
  name               = "${var.name_prefix}-batch-instance"
  description        = "ECS container instances of the ${var.name_prefix} Batch compute environments"
  assume_role_policy = data.aws_iam_policy_document.instance_assume.json

  tags = var.tags
}

# AWS-managed: what the ECS agent needs (register with the cluster, pull from ECR, awslogs).
resource "aws_iam_role_policy_attachment" "instance_ecs" {
  role       = aws_iam_role.instance.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
}

resource "aws_iam_instance_profile" "instance" {
  name = "${var.name_prefix}-batch-instance"
  role = aws_iam_role.instance.name

  tags = var.tags
}

################################################################################
# Job role (what the containers may do)
################################################################################

data "aws_iam_policy_document" "job_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "job" {
  statement {
    sid       = "ListDataBuckets"
    actions   = ["s3:ListBucket"]
    resources = [var.input_bucket_arn, var.output_bucket_arn, var.models_bucket_arn]
  }

  statement {
    sid       = "ReadInputsAndModels"
    actions   = ["s3:GetObject"]
    resources = ["${var.input_bucket_arn}/*", "${var.models_bucket_arn}/*"]
  }

  statement {
    sid     = "WriteResults"
    actions = ["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"]
    resources = [
      "${var.output_bucket_arn}/*",
      "${var.input_bucket_arn}/${var.s3_upload_path}/*",
    ]
  }

  dynamic "statement" {
    for_each = length(local.parameter_arns) > 0 ? [1] : []

    content {
      sid       = "ReadElasticsearchParameter"
      actions   = ["ssm:GetParameter"]
      resources = local.parameter_arns
    }
  }

  dynamic "statement" {
    for_each = length(local.secret_arns) > 0 ? [1] : []

    content {
      sid       = "ReadElasticsearchSecret"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = local.secret_arns
    }
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

resource "aws_iam_role" "job" {
  name               = "${var.name_prefix}-batch-job"
  description        = "Containers of the ${var.name_prefix} Batch jobs"
  assume_role_policy = data.aws_iam_policy_document.job_assume.json

  tags = var.tags
}

resource "aws_iam_role_policy" "job" {
  name   = "buckets-and-secrets"
  role   = aws_iam_role.job.id
  policy = data.aws_iam_policy_document.job.json
}

################################################################################
# Compute environments (scale to zero), job queues
################################################################################

# IMDSv2 only, hop limit 1 (job containers get credentials from the ECS task-role endpoint, never
# from the instance), encrypted root volume large enough for CUDA images.
resource "aws_launch_template" "this" {
  name_prefix            = "${var.name_prefix}-batch-"
  description            = "Batch compute instances of ${var.name_prefix}"
  update_default_version = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_size           = var.root_volume_size
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(var.tags, { Name = "${var.name_prefix}-batch" })
  }

  tags = var.tags
}

resource "aws_batch_compute_environment" "this" {
  for_each = local.compute

  # A prefix plus create_before_destroy: changes that need a new environment (spot <-> on-demand)
  # create it first and move the queue over.
  compute_environment_name_prefix = "${var.name_prefix}-${each.key}-"
  type                            = "MANAGED"
  state                           = "ENABLED"

  compute_resources {
    type                = each.value.use_spot ? "SPOT" : "EC2"
    allocation_strategy = each.value.use_spot ? "SPOT_CAPACITY_OPTIMIZED" : "BEST_FIT_PROGRESSIVE"
    bid_percentage      = each.value.use_spot ? var.spot_bid_percentage : null

    # Scale to zero: no instance runs while no job is queued.
    min_vcpus     = 0
    max_vcpus     = each.value.max_vcpus
    instance_type = each.value.instance_types

    instance_role      = aws_iam_instance_profile.instance.arn
    security_group_ids = var.security_group_ids
    subnets            = var.subnet_ids

    ec2_configuration {
      image_type        = each.value.image_type
      image_id_override = each.value.image_id_override
    }

    launch_template {
      launch_template_id = aws_launch_template.this.id
      version            = aws_launch_template.this.latest_version
    }

    tags = merge(var.tags, { Name = "${var.name_prefix}-batch-${each.key}" })
  }

  tags = var.tags

  lifecycle {
    create_before_destroy = true
    ignore_changes        = [compute_resources[0].desired_vcpus]
  }

  # Deleting the environment needs the instance role until its instances are gone.
  depends_on = [aws_iam_role_policy_attachment.instance_ecs]
}

resource "aws_batch_job_queue" "this" {
  for_each = local.queue_names

  name     = each.value
  state    = "ENABLED"
  priority = 1

  compute_environment_order {
    order               = 1
    compute_environment = aws_batch_compute_environment.this[each.key].arn
  }

  dynamic "job_state_time_limit_action" {
    for_each = local.runnable_cancel_reasons

    content {
      state            = "RUNNABLE"
      action           = "CANCEL"
      reason           = job_state_time_limit_action.value
      max_time_seconds = var.runnable_timeout_seconds
    }
  }

  tags = var.tags
}

################################################################################
# Job definitions
################################################################################

resource "aws_batch_job_definition" "this" {
  for_each = local.job_definitions

  name                  = local.job_definition_names[each.key]
  type                  = "container"
  platform_capabilities = ["EC2"]
  propagate_tags        = true

  container_properties = jsonencode({
    image                = each.value.compute == "cpu" ? coalesce(var.cpu_container_image, var.container_image) : var.container_image
    command              = each.value.command
    jobRoleArn           = aws_iam_role.job.arn
    resourceRequirements = local.resource_requirements[each.value.compute]
    environment = [
      for name in sort(keys(local.job_environment[each.value.compute])) : {
        name  = name
        value = local.job_environment[each.value.compute][name]
      } if local.job_environment[each.value.compute][name] != ""
    ]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this.name
        awslogs-region        = local.region
        awslogs-stream-prefix = replace(each.key, "_", "-")
      }
    }
  })

  # Spot reclaims (status reason "Host EC2 (instance ...) terminated.") are retried; anything the
  # application decides (a non-zero exit code) ends the job at once.
  retry_strategy {
    attempts = var.job_attempts

    evaluate_on_exit {
      action           = "RETRY"
      on_status_reason = "Host EC2*"
    }

    evaluate_on_exit {
      action       = "EXIT"
      on_exit_code = "*"
    }

    evaluate_on_exit {
      action    = "EXIT"
      on_reason = "*"
    }
  }

  timeout {
    attempt_duration_seconds = var.job_timeout_seconds
  }

  tags = merge(var.tags, { Name = local.job_definition_names[each.key] })
}
