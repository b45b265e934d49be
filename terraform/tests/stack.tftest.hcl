# Whole-stack plans with the real AWS provider schema and mocked AWS calls: every configuration a
# user documents or is likely to choose must plan. Run with `terraform test` in terraform/ (after
# `terraform init -backend=false`); tests/terraform/test_terraform_test.py runs it in make test.

mock_provider "aws" {
  source          = "./tests/mocks"
  override_during = plan
}

variables {
  container_image  = "123456789012.dkr.ecr.us-east-1.amazonaws.com/face-embed:0.1.0"
  lambda_build_dir = "tests/fixtures/lambda"
}

run "defaults" {
  command = plan

  assert {
    condition     = output.gpu_job_queue == "face-embed-dev-gpu-queue" && output.cpu_job_queue == "face-embed-dev-cpu-queue"
    error_message = "The job queues are not named as terraform/naming.json says."
  }

  assert {
    condition = output.lambda_log_group_names == {
      dispatcher   = "/aws/lambda/face-embed-dev-dispatcher"
      controller   = "/aws/lambda/face-embed-dev-controller"
      monitor      = "/aws/lambda/face-embed-dev-monitor"
      idle_stopper = "/aws/lambda/face-embed-dev-idle-stopper"
    }
    error_message = "The function log groups are not the ones `aws logs tail` needs: ${jsonencode(output.lambda_log_group_names)}"
  }

  assert {
    condition     = output.trigger_dlq_url != output.monitor_dlq_url
    error_message = "Both dead-letter queues must be outputs of their own."
  }

  assert {
    condition     = output.availability_zones == tolist(["us-east-1a", "us-east-1b"])
    error_message = "The zones must be the first az_count zones that offer the GPU type: ${jsonencode(output.availability_zones)}"
  }

  assert {
    condition     = output.app_url == "http://10.42.0.10:8000"
    error_message = "The app URL must be the instance's private address on the app port."
  }

  assert {
    condition     = output.api_key_parameter_name == "/face-embed/dev/api-key"
    error_message = "The API key parameter is not named as naming.json says."
  }

  assert {
    condition     = module.kms[0].key_arn == output.kms_key_arn
    error_message = "Without kms_key_arn the stack must create and use its own key."
  }

  assert {
    condition     = module.vpc.instances_have_public_ip && length(module.vpc.private_subnet_ids) == 0
    error_message = "The default (no NAT) has public subnets only."
  }
}

# The documented example of cpu_container_image (terraform.tfvars.example) must be accepted.
run "cpu_container_image" {
  command = plan

  variables {
    cpu_container_image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/face-embed-cpu:0.1.0"
  }

  assert {
    condition     = output.job_definitions["face_embedding_cpu"] == "face-embed-dev-face-embedding-cpu"
    error_message = "The CPU job definitions must plan with cpu_container_image set."
  }
}

# The GPU ML pipeline design's tfvars set ml_container_image: it is an alias of container_image.
run "ml_container_image_alias" {
  command = plan

  variables {
    container_image    = null
    ml_container_image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/ml-python:1.0.0"
  }

  assert {
    condition     = output.container_image == "123456789012.dkr.ecr.us-east-1.amazonaws.com/ml-python:1.0.0"
    error_message = "ml_container_image must be used as the stack's image."
  }
}

run "no_image_at_all" {
  command = plan

  variables {
    container_image = null
  }

  expect_failures = [var.ml_container_image]
}

run "two_different_images" {
  command = plan

  variables {
    ml_container_image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/other:1.0.0"
  }

  expect_failures = [var.ml_container_image]
}

run "nat_with_private_subnets" {
  command = plan

  variables {
    enable_nat_gateway     = true
    one_nat_gateway_per_az = true
    az_count               = 3
  }

  assert {
    condition     = !module.vpc.instances_have_public_ip
    error_message = "With NAT the instances must not get public addresses."
  }

  assert {
    condition     = length(module.vpc.private_subnet_ids) == 3 && length(module.vpc.public_subnet_ids) == 3
    error_message = "NAT needs a private and a public subnet per zone."
  }

  assert {
    condition     = length(module.vpc.nat_gateway_public_ips) == 3
    error_message = "one_nat_gateway_per_az must create a NAT gateway in each zone."
  }

  assert {
    condition     = output.availability_zones == tolist(["us-east-1a", "us-east-1b", "us-east-1d"])
    error_message = "us-east-1c does not offer the GPU type and must be skipped: ${jsonencode(output.availability_zones)}"
  }
}

run "on_demand_with_s3_events_and_emails" {
  command = plan

  variables {
    ml_gpu_use_spot_instances     = false
    ml_cpu_use_spot_instances     = false
    enable_s3_event_notifications = true
    s3_event_filter_prefix        = "incoming/"
    s3_event_filter_suffix        = ".json"
    notification_emails           = ["ops@example.com", "ml-team@example.com"]
  }

  assert {
    condition     = length(module.sns.email_subscription_arns) == 2
    error_message = "Every notification e-mail must get a subscription."
  }

  assert {
    condition     = module.event_queue[0].event_source_mapping_maximum_concurrency == null
    error_message = "Without s3_event_maximum_concurrency the mapping has no concurrency limit of its own."
  }
}

run "spot_gpu_instance" {
  command = plan

  variables {
    gpu_use_spot_instance = true
    gpu_spot_max_price    = "0.30"
  }

  assert {
    condition     = output.gpu_instance_id == "i-0123456789abcdef0"
    error_message = "The spot GPU instance must plan."
  }
}

run "bring_your_own_key_and_api_key_parameter" {
  command = plan

  variables {
    kms_key_arn            = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    api_key_parameter_name = "/shared/face-embed/api-key"
  }

  assert {
    condition     = length(module.kms) == 0 && output.kms_key_arn == "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    error_message = "An existing key must be used and no key created."
  }

  assert {
    condition     = output.api_key_parameter_name == "/shared/face-embed/api-key"
    error_message = "An existing API key parameter must be used by name."
  }
}

# Every setting of terraform.tfvars.example, uncommented. tests/terraform/test_terraform_test.py
# checks that these values are exactly the example's, so the two cannot drift apart.
run "every_setting_of_the_example" {
  command = plan

  variables {
    container_image                       = "123456789012.dkr.ecr.us-east-1.amazonaws.com/face-embed:0.1.0"
    ml_container_image                    = "123456789012.dkr.ecr.us-east-1.amazonaws.com/face-embed:0.1.0"
    cpu_container_image                   = "123456789012.dkr.ecr.us-east-1.amazonaws.com/face-embed-cpu:0.1.0"
    aws_region                            = "us-east-1"
    project_name                          = "face-embed"
    environment                           = "dev"
    tags                                  = { CostCenter = "ml" }
    kms_key_arn                           = null
    kms_deletion_window_in_days           = 30
    log_retention_days                    = 365
    vpc_cidr                              = "10.42.0.0/16"
    az_count                              = 2
    azs                                   = ["us-east-1a", "us-east-1b"]
    create_private_subnets                = false
    enable_nat_gateway                    = false
    one_nat_gateway_per_az                = false
    enable_interface_endpoints            = true
    interface_endpoint_az_count           = 1
    app_allowed_cidrs                     = ["10.8.0.0/16"]
    extra_egress_tcp_ports                = [9200]
    enable_flow_log                       = true
    s3_kms_encryption                     = true
    s3_force_destroy                      = false
    s3_noncurrent_version_expiration_days = 30
    s3_access_logging                     = true
    enable_s3_event_notifications         = false
    s3_event_filter_prefix                = "incoming/"
    s3_event_filter_suffix                = ""
    s3_event_images_batch_threshold       = 200
    s3_event_video_instance_max_bytes     = 209715200
    s3_event_batching_window_seconds      = 10
    s3_event_batch_size                   = 1000
    s3_event_maximum_concurrency          = 5
    notification_emails                   = []
    trigger_publisher_principal_arns      = ["arn:aws:iam::210987654321:role/producer"]
    api_key_parameter_name                = null
    model_pack                            = "buffalo_l"
    models_s3_prefix                      = "insightface"
    det_size                              = 640
    execution_provider                    = "auto"
    s3_upload_path                        = "upload_with_embed"
    dispatcher_read_prefixes              = ["jobs/", "manifests/"]
    vector_index                          = "embedded"
    index_name                            = "face_embeddings"
    es_hosts                              = "https://search.example.com:9200"
    es_secret_ssm_parameter               = "/face-embed/dev/es-credentials"
    auto_shutdown_idle_time               = 3600
    ml_gpu_use_spot_instances             = true
    ml_cpu_use_spot_instances             = true
    batch_gpu_instance_types              = ["g4dn", "g5"]
    batch_cpu_instance_types              = ["m5", "c5"]
    batch_gpu_max_vcpus                   = 16
    batch_cpu_max_vcpus                   = 32
    batch_gpu_image_type                  = "ECS_AL2023_NVIDIA"
    ml_gpu_job_vcpus                      = 4
    ml_gpu_job_memory                     = 16384
    ml_gpu_job_gpus                       = 1
    ml_cpu_job_vcpus                      = 2
    ml_cpu_job_memory                     = 4096
    job_max_vcpus                         = 96
    job_max_memory                        = 393216
    job_max_gpus                          = 8
    job_min_memory                        = 512
    images_per_child                      = 1000
    batch_job_attempts                    = 3
    batch_job_timeout_seconds             = 14400
    batch_runnable_timeout_seconds        = 1800
    gpu_instance_type                     = "g4dn.xlarge"
    gpu_fallback_instance_types           = ["g5.xlarge"]
    gpu_use_spot_instance                 = false
    gpu_spot_max_price                    = null
    gpu_ami_id                            = null
    gpu_root_volume_size                  = 100
    gpu_stop_after_first_boot             = true
    enable_ssm_session_manager            = true
    lambda_build_dir                      = "tests/fixtures/lambda"
    lambda_architecture                   = "x86_64"
    lambda_log_level                      = "INFO"
    lambda_tracing_mode                   = "Active"
    idle_check_schedule                   = "rate(5 minutes)"
    controller_start_timeout_seconds      = 300
    controller_health_timeout_seconds     = 600
    unreachable_grace_seconds             = 900
  }

  assert {
    condition     = output.availability_zones == tolist(["us-east-1a", "us-east-1b"])
    error_message = "Pinned zones must be used as given."
  }
}
