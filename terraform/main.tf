# Face embeddings on AWS, GPU only when needed. This root module composes the modules under
# modules/ and holds no resources of its own. README.md explains the architecture and the costs.

locals {
  name_prefix = "${var.project_name}-${var.environment}"

  # Names the root chooses (the modules name the rest); all of them are in naming.json.
  names = {
    trigger_dlq       = "${local.name_prefix}-trigger-dlq"
    monitor_dlq       = "${local.name_prefix}-monitor-dlq"
    s3_event_dlq      = "${local.name_prefix}-s3-events-dlq"
    idempotency_table = "${local.name_prefix}-idempotency"
    api_key_parameter = "/${var.project_name}/${var.environment}/api-key"
  }

  tags = merge(
    {
      Project     = var.project_name
      Environment = var.environment
      ManagedBy   = "terraform"
    },
    var.tags,
  )

  app_port = 8000

  # container_image, or its alias ml_container_image (the variables' validations require one).
  container_image = coalesce(var.container_image, var.ml_container_image)

  lambda_build_dir        = var.lambda_build_dir != null ? var.lambda_build_dir : "${path.root}/../build/lambda"
  user_data_template_path = "${path.root}/../scripts/ec2-user-data.sh.tftpl"

  create_kms_key = var.kms_key_arn == null
  kms_key_arn    = local.create_kms_key ? module.kms[0].key_arn : var.kms_key_arn
}

module "kms" {
  source = "./modules/kms"
  count  = local.create_kms_key ? 1 : 0

  name                    = local.name_prefix
  deletion_window_in_days = var.kms_deletion_window_in_days
  # Services that deliver into this stack's encrypted topics and queues: S3 -> S3 event queue,
  # SNS -> trigger DLQ, EventBridge -> monitor DLQ, CloudWatch alarms -> notifications topic.
  service_principals = ["cloudwatch.amazonaws.com", "events.amazonaws.com", "s3.amazonaws.com", "sns.amazonaws.com"]

  tags = local.tags
}

module "vpc" {
  source = "./modules/vpc"

  name                        = local.name_prefix
  cidr_block                  = var.vpc_cidr
  az_count                    = var.az_count
  azs                         = var.azs
  required_instance_types     = [var.gpu_instance_type]
  create_private_subnets      = var.create_private_subnets || var.enable_nat_gateway
  enable_nat_gateway          = var.enable_nat_gateway
  one_nat_gateway_per_az      = var.one_nat_gateway_per_az
  enable_interface_endpoints  = var.enable_interface_endpoints
  interface_endpoint_az_count = var.interface_endpoint_az_count
  app_port                    = local.app_port
  app_allowed_cidrs           = var.app_allowed_cidrs
  extra_egress_tcp_ports      = var.extra_egress_tcp_ports
  enable_flow_log             = var.enable_flow_log
  log_retention_days          = var.log_retention_days
  kms_key_arn                 = local.kms_key_arn

  tags = local.tags
}

module "s3" {
  source = "./modules/s3"

  name_prefix                        = local.name_prefix
  kms_key_arn                        = var.s3_kms_encryption ? local.kms_key_arn : null
  force_destroy                      = var.s3_force_destroy
  noncurrent_version_expiration_days = var.s3_noncurrent_version_expiration_days
  enable_access_logging              = var.s3_access_logging
  enable_event_notifications         = var.enable_s3_event_notifications
  event_queue_arn                    = var.enable_s3_event_notifications ? module.event_queue[0].queue_arn : null
  event_notification_filter_prefix   = var.s3_event_filter_prefix
  event_notification_filter_suffix   = var.s3_event_filter_suffix

  tags = local.tags
}

module "api_key" {
  source = "./modules/api_key"

  name        = var.api_key_parameter_name != null ? var.api_key_parameter_name : local.names.api_key_parameter
  create      = var.api_key_parameter_name == null
  kms_key_arn = local.kms_key_arn

  tags = local.tags
}

module "sns" {
  source = "./modules/sns"

  name_prefix                      = local.name_prefix
  kms_key_arn                      = local.kms_key_arn
  dispatcher_function_arn          = module.lambda.dispatcher_function_arn
  trigger_dlq_arn                  = module.trigger_dlq.queue_arn
  trigger_publisher_principal_arns = var.trigger_publisher_principal_arns
  notification_emails              = var.notification_emails

  tags = local.tags
}

module "trigger_dlq" {
  source = "./modules/dlq"

  name        = local.names.trigger_dlq
  kms_key_arn = local.kms_key_arn
  allowed_senders = [
    { service = "sns.amazonaws.com", source_arn = module.sns.trigger_topic_arn },
  ]
  alarm_actions = [module.sns.notifications_topic_arn]

  tags = local.tags
}

module "monitor_dlq" {
  source = "./modules/dlq"

  name        = local.names.monitor_dlq
  kms_key_arn = local.kms_key_arn
  allowed_senders = [
    { service = "events.amazonaws.com", source_arn = module.lambda.batch_job_state_rule_arn },
    { service = "events.amazonaws.com", source_arn = module.lambda.idle_check_rule_arn },
  ]
  alarm_actions = [module.sns.notifications_topic_arn]

  tags = local.tags
}

module "idempotency" {
  source = "./modules/idempotency"

  name        = local.names.idempotency_table
  kms_key_arn = local.kms_key_arn

  tags = local.tags
}

module "batch" {
  source = "./modules/batch"

  name_prefix         = local.name_prefix
  subnet_ids          = module.vpc.instance_subnet_ids
  security_group_ids  = [module.vpc.batch_security_group_id]
  container_image     = local.container_image
  cpu_container_image = var.cpu_container_image

  input_bucket_name  = module.s3.input_bucket_name
  input_bucket_arn   = module.s3.input_bucket_arn
  output_bucket_name = module.s3.output_bucket_name
  output_bucket_arn  = module.s3.output_bucket_arn
  models_bucket_name = module.s3.models_bucket_name
  models_bucket_arn  = module.s3.models_bucket_arn
  models_s3_prefix   = var.models_s3_prefix

  model_pack                   = var.model_pack
  det_size                     = var.det_size
  gpu_execution_provider       = var.execution_provider == "cpu" ? "auto" : var.execution_provider
  s3_upload_path               = var.s3_upload_path
  vector_index                 = var.vector_index
  index_name                   = var.index_name
  es_hosts                     = var.es_hosts
  es_secret_ssm_parameter_name = var.es_secret_ssm_parameter
  kms_key_arn                  = local.kms_key_arn

  gpu_use_spot_instances   = var.ml_gpu_use_spot_instances
  cpu_use_spot_instances   = var.ml_cpu_use_spot_instances
  gpu_instance_types       = var.batch_gpu_instance_types
  cpu_instance_types       = var.batch_cpu_instance_types
  gpu_max_vcpus            = var.batch_gpu_max_vcpus
  cpu_max_vcpus            = var.batch_cpu_max_vcpus
  gpu_image_type           = var.batch_gpu_image_type
  gpu_job_vcpus            = var.ml_gpu_job_vcpus
  gpu_job_memory           = var.ml_gpu_job_memory
  gpu_job_gpus             = var.ml_gpu_job_gpus
  cpu_job_vcpus            = var.ml_cpu_job_vcpus
  cpu_job_memory           = var.ml_cpu_job_memory
  job_attempts             = var.batch_job_attempts
  job_timeout_seconds      = var.batch_job_timeout_seconds
  runnable_timeout_seconds = var.batch_runnable_timeout_seconds
  log_retention_days       = var.log_retention_days

  tags = local.tags
}

module "ec2_gpu" {
  source = "./modules/ec2_gpu"

  name_prefix                 = local.name_prefix
  instance_type               = var.gpu_instance_type
  ami_id                      = var.gpu_ami_id
  subnet_id                   = module.vpc.instance_subnet_ids[0]
  security_group_ids          = [module.vpc.gpu_instance_security_group_id]
  associate_public_ip_address = module.vpc.instances_have_public_ip
  root_volume_size            = var.gpu_root_volume_size
  user_data_template_path     = local.user_data_template_path
  stop_after_first_boot       = var.gpu_stop_after_first_boot
  container_image             = local.container_image
  app_port                    = local.app_port
  use_spot_instance           = var.gpu_use_spot_instance
  spot_max_price              = var.gpu_spot_max_price

  input_bucket_name  = module.s3.input_bucket_name
  input_bucket_arn   = module.s3.input_bucket_arn
  models_bucket_name = module.s3.models_bucket_name
  models_bucket_arn  = module.s3.models_bucket_arn
  models_s3_prefix   = var.models_s3_prefix

  model_pack                   = var.model_pack
  det_size                     = var.det_size
  execution_provider           = var.execution_provider
  s3_upload_path               = var.s3_upload_path
  vector_index                 = var.vector_index
  index_name                   = var.index_name
  es_hosts                     = var.es_hosts
  es_secret_ssm_parameter_name = var.es_secret_ssm_parameter
  api_key_parameter_name       = module.api_key.name
  auto_shutdown_idle_time      = var.auto_shutdown_idle_time

  kms_key_arn                = local.kms_key_arn
  log_retention_days         = var.log_retention_days
  enable_ssm_session_manager = var.enable_ssm_session_manager

  tags = local.tags
}

locals {
  # Manifests uploaded under the S3 event prefix are read (counted) by the dispatcher too.
  dispatcher_read_prefixes = concat(
    var.dispatcher_read_prefixes,
    var.enable_s3_event_notifications && var.s3_event_filter_prefix != "" ? [var.s3_event_filter_prefix] : [],
  )
}

module "lambda" {
  source = "./modules/lambda"

  name_prefix        = local.name_prefix
  build_dir          = local.lambda_build_dir
  architecture       = var.lambda_architecture
  log_level          = var.lambda_log_level
  tracing_mode       = var.lambda_tracing_mode
  log_retention_days = var.log_retention_days
  kms_key_arn        = local.kms_key_arn
  subnet_ids         = module.vpc.lambda_subnet_ids
  security_group_ids = [module.vpc.lambda_security_group_id]

  input_bucket_name           = module.s3.input_bucket_name
  input_bucket_arn            = module.s3.input_bucket_arn
  input_read_prefixes         = local.dispatcher_read_prefixes
  s3_event_prefix             = var.s3_event_filter_prefix
  event_batch_threshold       = var.s3_event_images_batch_threshold
  video_instance_max_bytes    = var.s3_event_video_instance_max_bytes
  gpu_compute_max_vcpus       = var.batch_gpu_max_vcpus
  cpu_compute_max_vcpus       = var.batch_cpu_max_vcpus
  output_bucket_name          = module.s3.output_bucket_name
  job_queue_names             = module.batch.job_queue_names
  job_queue_arns              = module.batch.job_queue_arns
  job_definition_names        = module.batch.job_definition_names
  job_definition_arn_prefixes = module.batch.job_definition_arn_prefixes
  gpu_job_vcpus               = var.ml_gpu_job_vcpus
  gpu_job_memory              = var.ml_gpu_job_memory
  gpu_job_gpus                = var.ml_gpu_job_gpus
  cpu_job_vcpus               = var.ml_cpu_job_vcpus
  cpu_job_memory              = var.ml_cpu_job_memory
  job_max_vcpus               = var.job_max_vcpus
  job_max_memory              = var.job_max_memory
  job_max_gpus                = var.job_max_gpus
  job_min_memory              = var.job_min_memory
  images_per_child            = var.images_per_child
  idempotency_table_name      = module.idempotency.table_name
  idempotency_table_arn       = module.idempotency.table_arn
  trigger_dlq_url             = module.trigger_dlq.queue_url
  trigger_dlq_arn             = module.trigger_dlq.queue_arn
  monitor_dlq_arn             = module.monitor_dlq.queue_arn
  notifications_topic_arn     = module.sns.notifications_topic_arn

  gpu_instance_id           = module.ec2_gpu.instance_id
  gpu_instance_arn          = module.ec2_gpu.instance_arn
  app_port                  = local.app_port
  api_key_parameter_name    = module.api_key.name
  api_key_parameter_arn     = module.api_key.arn
  start_timeout_seconds     = var.controller_start_timeout_seconds
  health_timeout_seconds    = var.controller_health_timeout_seconds
  gpu_instance_type         = var.gpu_instance_type
  fallback_instance_types   = var.gpu_fallback_instance_types
  auto_shutdown_idle_time   = var.auto_shutdown_idle_time
  unreachable_grace_seconds = var.unreachable_grace_seconds
  idle_check_schedule       = var.idle_check_schedule

  tags = local.tags
}

# Upload events the dispatcher failed on max_receive_count times (SQS redrive needs no sender policy).
module "s3_event_dlq" {
  source = "./modules/dlq"
  count  = var.enable_s3_event_notifications ? 1 : 0

  name          = local.names.s3_event_dlq
  kms_key_arn   = local.kms_key_arn
  alarm_actions = [module.sns.notifications_topic_arn]

  tags = local.tags
}

# S3 upload events -> a queue -> the dispatcher, with a batching window: the uploads of a short
# window become one invocation, and their images one start_and_process (modules/event_queue/README.md).
module "event_queue" {
  source = "./modules/event_queue"
  count  = var.enable_s3_event_notifications ? 1 : 0

  name_prefix              = local.name_prefix
  kms_key_arn              = local.kms_key_arn
  dead_letter_queue_arn    = module.s3_event_dlq[0].queue_arn
  dead_letter_queue_url    = module.s3_event_dlq[0].queue_url
  source_bucket_arn        = module.s3.input_bucket_arn
  function_name            = module.lambda.dispatcher_function_arn
  function_role_name       = module.lambda.dispatcher_role_name
  function_timeout_seconds = module.lambda.dispatcher_timeout_seconds
  batching_window_seconds  = var.s3_event_batching_window_seconds
  batch_size               = var.s3_event_batch_size
  maximum_concurrency      = var.s3_event_maximum_concurrency

  tags = local.tags
}

# Warnings (not errors) for settings that are valid alone but not together.
check "spot_gpu_instance_settings" {
  assert {
    condition     = !var.gpu_use_spot_instance || length(var.gpu_fallback_instance_types) == 0
    error_message = "gpu_fallback_instance_types is not used with gpu_use_spot_instance: a Spot instance's type cannot change, so the controller reports a lack of Spot capacity instead of switching types."
  }

  assert {
    condition     = var.gpu_use_spot_instance || var.gpu_spot_max_price == null
    error_message = "gpu_spot_max_price has no effect without gpu_use_spot_instance = true."
  }
}

check "elasticsearch_settings" {
  assert {
    condition     = var.vector_index != "elasticsearch" || var.es_hosts != ""
    error_message = "vector_index is elasticsearch but es_hosts is empty: the app and the jobs will have no index to write to."
  }
}
