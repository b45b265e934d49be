data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

# Default AMI: the AWS Deep Learning Base GPU AMI on Amazon Linux 2023 (NVIDIA driver, docker and
# the NVIDIA container toolkit preinstalled). Only read when ami_id is not given.
data "aws_ami" "dlami" {
  count = var.ami_id == null ? 1 : 0

  most_recent = true
  owners      = ["amazon"]

  filter {
    name   = "name"
    values = [var.ami_name_filter]
  }

  filter {
    name   = "architecture"
    values = ["x86_64"]
  }

  filter {
    name   = "state"
    values = ["available"]
  }
}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  name           = "${var.name_prefix}-gpu"
  log_group_name = "/${var.name_prefix}/gpu-instance"
  ami_id         = var.ami_id != null ? var.ami_id : data.aws_ami.dlami[0].id

  # <account>.dkr.ecr.<region>.amazonaws.com/<repository>[:tag|@digest]
  image_parts        = regex("^([0-9]{12})\\.dkr\\.ecr\\.([a-z0-9-]+)\\.amazonaws\\.com(?:\\.cn)?/([^:@]+)", var.container_image)
  ecr_registry       = split("/", var.container_image)[0]
  ecr_repository_arn = "arn:${local.partition}:ecr:${local.image_parts[1]}:${local.image_parts[0]}:repository/${local.image_parts[2]}"

  # The app reads the API key from SSM and the Elasticsearch credentials from SSM or, named
  # secretsmanager:<id> or by ARN, from Secrets Manager (gpu_app/secret_store.py).
  es_secret_name              = var.es_secret_ssm_parameter_name == null ? "" : var.es_secret_ssm_parameter_name
  es_secret_in_secretsmanager = startswith(local.es_secret_name, "secretsmanager:") || strcontains(local.es_secret_name, ":secretsmanager:")
  es_secret_id                = trimprefix(local.es_secret_name, "secretsmanager:")
  parameter_arns = [
    for name in [var.api_key_parameter_name, local.es_secret_in_secretsmanager ? "" : local.es_secret_name] :
    "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/${trimprefix(name, "/")}"
    if name != ""
  ]
  # Secrets Manager appends six random characters to a secret's name in its ARN.
  secret_arns = local.es_secret_in_secretsmanager ? [
    startswith(local.es_secret_id, "arn:") ? local.es_secret_id : "arn:${local.partition}:secretsmanager:${local.region}:${local.account_id}:secret:${local.es_secret_id}-??????"
  ] : []

  # Settings of the app container (gpu_app/config.py). Empty values are left out.
  app_environment = {
    for name, value in {
      API_KEY_SSM_PARAMETER   = var.api_key_parameter_name
      AUTO_SHUTDOWN_IDLE_TIME = tostring(var.auto_shutdown_idle_time)
      AWS_REGION              = local.region
      DET_SIZE                = tostring(var.det_size)
      ES_HOSTS                = var.es_hosts
      ES_SECRET_NAME          = var.es_secret_ssm_parameter_name == null ? "" : var.es_secret_ssm_parameter_name
      EXECUTION_PROVIDER      = var.execution_provider
      HOST                    = "0.0.0.0"
      INDEX_NAME              = var.index_name
      MODEL_PACK              = var.model_pack
      MODEL_ROOT              = "/models"
      MODELS_S3_URI           = "s3://${var.models_bucket_name}/${var.models_s3_prefix}"
      PORT                    = tostring(var.app_port)
      REQUIRE_GPU             = "true"
      S3_BUCKET_NAME          = var.input_bucket_name
      S3_UPLOAD_PATH          = var.s3_upload_path
      STORAGE_BACKEND         = "s3"
      VECTOR_INDEX            = var.vector_index
    } : name => value if value != ""
  }

  user_data = templatefile(var.user_data_template_path, {
    aws_region             = local.region
    container_image        = var.container_image
    ecr_registry           = local.ecr_registry
    container_name         = var.container_name
    app_port               = var.app_port
    log_group_name         = aws_cloudwatch_log_group.this.name
    stop_after_first_boot  = var.stop_after_first_boot ? "true" : "false"
    health_timeout_seconds = var.health_timeout_seconds
    app_environment        = local.app_environment
  })
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
# Instance role: its buckets, ECR pull, its parameters, its log group
################################################################################

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "this" {
  statement {
    sid       = "ListOwnBuckets"
    actions   = ["s3:ListBucket"]
    resources = [var.input_bucket_arn, var.models_bucket_arn]
  }

  statement {
    sid       = "ReadInputsAndModels"
    actions   = ["s3:GetObject"]
    resources = ["${var.input_bucket_arn}/*", "${var.models_bucket_arn}/*"]
  }

  statement {
    # DELETE /images/{id} removes the image, its sidecar and its embeddings.
    sid       = "WriteAndDeleteUploadsAndEmbeddings"
    actions   = ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:PutObject"]
    resources = ["${var.input_bucket_arn}/${var.s3_upload_path}/*"]
  }

  statement {
    # GetAuthorizationToken has no resource-level permissions: AWS requires "*".
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "EcrPullAppImage"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [local.ecr_repository_arn]
  }

  dynamic "statement" {
    for_each = length(local.parameter_arns) > 0 ? [1] : []

    content {
      sid       = "ReadAppSecretsByName"
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

  statement {
    sid       = "WriteOwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
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

resource "aws_iam_role" "this" {
  name               = local.name
  description        = "GPU instance of ${var.name_prefix}: its buckets, ECR pull, its SSM parameters, its log group"
  assume_role_policy = data.aws_iam_policy_document.assume.json

  tags = var.tags
}

resource "aws_iam_role_policy" "this" {
  name   = "app"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}

# Shell access through Session Manager instead of SSH (no port 22 anywhere).
resource "aws_iam_role_policy_attachment" "ssm_core" {
  count = var.enable_ssm_session_manager ? 1 : 0

  role       = aws_iam_role.this.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "this" {
  name = local.name
  role = aws_iam_role.this.name

  tags = var.tags
}

################################################################################
# Instance
################################################################################

resource "aws_instance" "this" {
  ami                         = local.ami_id
  instance_type               = var.instance_type
  subnet_id                   = var.subnet_id
  vpc_security_group_ids      = var.security_group_ids
  associate_public_ip_address = var.associate_public_ip_address
  iam_instance_profile        = aws_iam_instance_profile.this.name
  ebs_optimized               = true
  monitoring                  = var.detailed_monitoring
  disable_api_termination     = var.disable_api_termination

  # The user data ends with "shutdown -h" after the first boot: that must stop, not terminate.
  instance_initiated_shutdown_behavior = "stop"
  user_data                            = local.user_data
  user_data_replace_on_change          = true

  # Optional Spot: a persistent request, so that a stopped instance can be started again and an
  # interruption stops it (keeping its volume and address) instead of terminating it.
  dynamic "instance_market_options" {
    for_each = var.use_spot_instance ? [1] : []

    content {
      market_type = "spot"

      spot_options {
        spot_instance_type             = "persistent"
        instance_interruption_behavior = "stop"
        max_price                      = var.spot_max_price
      }
    }
  }

  metadata_options {
    http_endpoint = "enabled"
    http_tokens   = "required"
    # 2, not 1: the app runs in a docker bridge network and takes the instance role's credentials
    # from IMDSv2, one hop further away.
    http_put_response_hop_limit = 2
    instance_metadata_tags      = "disabled"
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_size
    encrypted             = true
    delete_on_termination = true

    tags = merge(var.tags, { Name = local.name })
  }

  tags = merge(var.tags, { Name = local.name })

  lifecycle {
    # A new Deep Learning AMI release must not replace the instance on the next apply; replace it
    # deliberately with: terraform apply -replace=module.ec2_gpu.aws_instance.this
    ignore_changes = [ami]
  }

  depends_on = [aws_iam_role_policy.this]
}
