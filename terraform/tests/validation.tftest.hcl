# The edges of every variable validation: the smallest and the largest value each one admits must
# plan. The values just outside are in tests/refused (one run per file: a run refused by a
# module's validation errors, and expect_failures cannot name a module's variable).

mock_provider "aws" {
  source          = "./tests/mocks"
  override_during = plan
}

variables {
  container_image  = "123456789012.dkr.ecr.us-east-1.amazonaws.com/face-embed:0.1.0"
  lambda_build_dir = "tests/fixtures/lambda"
}

run "smallest_admitted_values" {
  command = plan

  variables {
    s3_event_images_batch_threshold       = 0
    s3_event_video_instance_max_bytes     = 0
    aws_region                            = "eu-west-1"
    project_name                          = "abc"
    environment                           = "a"
    kms_deletion_window_in_days           = 7
    log_retention_days                    = 1
    vpc_cidr                              = "10.42.0.0/24"
    az_count                              = 2
    interface_endpoint_az_count           = 1
    extra_egress_tcp_ports                = [1]
    app_allowed_cidrs                     = ["10.8.0.1/32"]
    s3_noncurrent_version_expiration_days = 1
    container_image                       = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/a:1"
    cpu_container_image                   = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/a@sha256:0000000000000000000000000000000000000000000000000000000000000000"
    api_key_parameter_name                = "k"
    model_pack                            = "a"
    models_s3_prefix                      = "m"
    det_size                              = 160
    index_name                            = "a"
    es_secret_ssm_parameter               = "e"
    s3_upload_path                        = "u"
    dispatcher_read_prefixes              = []
    auto_shutdown_idle_time               = 300
    batch_gpu_instance_types              = ["g4dn.xlarge"]
    batch_cpu_instance_types              = ["m5.large"]
    batch_gpu_max_vcpus                   = 4
    batch_cpu_max_vcpus                   = 2
    ml_gpu_job_vcpus                      = 1
    ml_gpu_job_memory                     = 512
    ml_gpu_job_gpus                       = 1
    ml_cpu_job_vcpus                      = 1
    ml_cpu_job_memory                     = 512
    batch_job_attempts                    = 1
    batch_job_timeout_seconds             = 60
    batch_runnable_timeout_seconds        = 600
    job_max_vcpus                         = 1
    job_max_memory                        = 512
    job_max_gpus                          = 1
    job_min_memory                        = 4
    images_per_child                      = 1
    gpu_root_volume_size                  = 75
    gpu_ami_id                            = "ami-01234567"
    gpu_use_spot_instance                 = true
    gpu_spot_max_price                    = "0.001"
    idle_check_schedule                   = "rate(1 minute)"
    controller_start_timeout_seconds      = 30
    controller_health_timeout_seconds     = 30
    unreachable_grace_seconds             = 0
    # The other value of each choice, and the shortest accepted forms.
    kms_key_arn                      = "arn:aws:kms:eu-west-1:123456789012:key/k"
    notification_emails              = ["a@b.co"]
    trigger_publisher_principal_arns = ["arn:aws:iam::210987654321:root"]
    es_hosts                         = "http://e"
    vector_index                     = "elasticsearch"
    execution_provider               = "cpu"
    batch_gpu_image_type             = "ECS_AL2_NVIDIA"
    lambda_architecture              = "arm64"
    lambda_log_level                 = "CRITICAL"
    lambda_tracing_mode              = "PassThrough"
    gpu_fallback_instance_types      = []
  }

  assert {
    condition     = output.gpu_job_queue == "abc-a-gpu-queue"
    error_message = "The shortest names must still build every name."
  }
}

run "largest_admitted_values" {
  command = plan

  variables {
    aws_region                            = "us-gov-west-1"
    project_name                          = "abcdefghij0123456789"
    environment                           = "abcdefghij"
    kms_deletion_window_in_days           = 30
    log_retention_days                    = 3653
    vpc_cidr                              = "10.0.0.0/16"
    az_count                              = 6
    azs                                   = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1e", "us-east-1f"]
    create_private_subnets                = true
    enable_nat_gateway                    = true
    one_nat_gateway_per_az                = true
    interface_endpoint_az_count           = 6
    extra_egress_tcp_ports                = [65535]
    app_allowed_cidrs                     = ["0.0.0.0/1"]
    s3_noncurrent_version_expiration_days = 36500
    container_image                       = "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/team/face-embed:${join("", [for i in range(128) : "t"])}"
    cpu_container_image                   = "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/team/face-embed-cpu:${join("", [for i in range(128) : "t"])}"
    det_size                              = 2048
    index_name                            = join("", [for i in range(255) : "x"])
    auto_shutdown_idle_time               = 604800
    batch_gpu_instance_types              = ["g4dn", "g5", "g6", "g6e", "p3", "p4d", "p5"]
    batch_gpu_max_vcpus                   = 4096
    batch_cpu_max_vcpus                   = 4096
    ml_gpu_job_vcpus                      = 4096
    ml_gpu_job_memory                     = 2000000
    ml_gpu_job_gpus                       = 8
    ml_cpu_job_vcpus                      = 4096
    ml_cpu_job_memory                     = 2000000
    batch_job_attempts                    = 10
    batch_job_timeout_seconds             = 1209600
    batch_runnable_timeout_seconds        = 86400
    job_max_vcpus                         = 4096
    job_max_memory                        = 2000000
    job_max_gpus                          = 8
    job_min_memory                        = 2000000
    images_per_child                      = 1000000
    gpu_instance_type                     = "p5en.48xlarge"
    gpu_root_volume_size                  = 16384
    gpu_ami_id                            = "ami-0123456789abcdef0"
    # The controller's 900 s Lambda timeout bounds the sum of the two waits.
    controller_start_timeout_seconds  = 450
    controller_health_timeout_seconds = 450
    unreachable_grace_seconds         = 86400
    notification_emails               = ["ml-ops+faces@mail.example.co.uk", "oncall@example.com"]
    trigger_publisher_principal_arns  = ["arn:aws-us-gov:iam::210987654321:role/path/producer", "arn:aws:iam::210987654321:user/ci"]
    es_hosts                          = "https://es-1.example.com:9200, https://es-2.example.com:9200"
    vector_index                      = "elasticsearch"
    execution_provider                = "cuda"
    lambda_architecture               = "x86_64"
    lambda_log_level                  = "DEBUG"
    lambda_tracing_mode               = "Active"
    gpu_fallback_instance_types       = ["g4dn.2xlarge", "g5.xlarge", "g6.xlarge", "g6e.xlarge", "gr6.4xlarge", "p3.2xlarge"]
    idle_check_schedule               = "cron(0/5 8-18 ? * MON-FRI *)"
  }

  assert {
    condition     = length(module.vpc.private_subnet_ids) == 6
    error_message = "Six zones with private subnets must fit a /16."
  }
}
