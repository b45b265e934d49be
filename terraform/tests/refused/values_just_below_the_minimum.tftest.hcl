# Refused on purpose: run by tests/terraform/test_terraform_test.py (terraform test
# -test-directory=tests/refused), which requires this run to fail with exactly the validations of
# the variables it sets, wherever they live (root or module). One run per file: a failed run skips
# the runs after it.

mock_provider "aws" {
  source          = "./tests/mocks"
  override_during = plan
}

variables {
  container_image  = "123456789012.dkr.ecr.us-east-1.amazonaws.com/face-embed:0.1.0"
  lambda_build_dir = "tests/fixtures/lambda"
}

run "values_just_below_the_minimum" {
  command = plan

  variables {
    s3_event_images_batch_threshold       = -1
    s3_event_video_instance_max_bytes     = -1
    kms_key_arn                           = "arn:aws:kms:us-east-1:123456789012:alias/mine"
    enable_s3_event_notifications         = true # the event queue gets the key too
    log_retention_days                    = 2
    vpc_cidr                              = "10.42.0.0/25"
    az_count                              = 1
    azs                                   = ["us-east-1a"]
    interface_endpoint_az_count           = 0
    app_allowed_cidrs                     = ["0.0.0.0/0"]
    extra_egress_tcp_ports                = [0]
    s3_noncurrent_version_expiration_days = 0
    notification_emails                   = ["ops.example.com"]
    trigger_publisher_principal_arns      = ["arn:aws:iam::1234:root"]
    container_image                       = "docker.io/library/face-embed:latest"
    cpu_container_image                   = "123456789012.dkr.ecr.us-east-1.amazonaws.com/face-embed-cpu"
    api_key_parameter_name                = "has space"
    model_pack                            = ""
    models_s3_prefix                      = "/leading"
    det_size                              = 159
    execution_provider                    = "rocm"
    vector_index                          = "faiss"
    index_name                            = ""
    es_hosts                              = "search.example.com:9200"
    es_secret_ssm_parameter               = ""
    s3_upload_path                        = "trailing/"
    dispatcher_read_prefixes              = [""]
    auto_shutdown_idle_time               = 299
    batch_gpu_instance_types              = []
    batch_cpu_instance_types              = ["g4dn"]
    batch_gpu_image_type                  = "ECS_AL2023"
    ml_gpu_job_vcpus                      = 0
    ml_gpu_job_memory                     = 511
    ml_gpu_job_gpus                       = 0
    ml_cpu_job_vcpus                      = 0
    ml_cpu_job_memory                     = 511
    batch_job_attempts                    = 0
    batch_job_timeout_seconds             = 59
    batch_runnable_timeout_seconds        = 599
    job_max_vcpus                         = 0
    job_max_memory                        = 511
    job_max_gpus                          = 0
    job_min_memory                        = 3
    images_per_child                      = 0
    gpu_instance_type                     = "m5.xlarge"
    gpu_fallback_instance_types           = ["t3.micro"]
    gpu_ami_id                            = "ami-123"
    gpu_spot_max_price                    = "0"
    gpu_root_volume_size                  = 74
    lambda_architecture                   = "arm"
    lambda_log_level                      = "TRACE"
    lambda_tracing_mode                   = "Off"
    idle_check_schedule                   = "every 5 minutes"
    controller_health_timeout_seconds     = 29
    unreachable_grace_seconds             = -1
  }
}
