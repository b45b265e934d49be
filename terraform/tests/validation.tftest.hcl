# The edges of every variable validation: the smallest and the largest value each one admits must
# plan, and the values just outside must be refused by that variable's own validation.

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

run "values_just_below_the_minimum" {
  command = plan

  variables {
    s3_event_images_batch_threshold       = -1
    s3_event_video_instance_max_bytes     = -1
    aws_region                            = "useast1"
    project_name                          = "ab"
    environment                           = ""
    kms_key_arn                           = "arn:aws:kms:us-east-1:123456789012:alias/mine"
    kms_deletion_window_in_days           = 6
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

  expect_failures = [
    var.s3_event_images_batch_threshold,
    var.s3_event_video_instance_max_bytes,
    var.aws_region,
    var.project_name,
    var.environment,
    var.kms_key_arn,
    var.kms_deletion_window_in_days,
    var.log_retention_days,
    var.vpc_cidr,
    var.az_count,
    var.azs,
    var.interface_endpoint_az_count,
    var.app_allowed_cidrs,
    var.extra_egress_tcp_ports,
    var.s3_noncurrent_version_expiration_days,
    var.notification_emails,
    var.trigger_publisher_principal_arns,
    var.container_image,
    var.cpu_container_image,
    var.api_key_parameter_name,
    var.model_pack,
    var.models_s3_prefix,
    var.det_size,
    var.execution_provider,
    var.vector_index,
    var.index_name,
    var.es_hosts,
    var.es_secret_ssm_parameter,
    var.s3_upload_path,
    var.dispatcher_read_prefixes,
    var.auto_shutdown_idle_time,
    var.batch_gpu_instance_types,
    var.batch_cpu_instance_types,
    var.batch_gpu_image_type,
    var.ml_gpu_job_vcpus,
    var.ml_gpu_job_memory,
    var.ml_gpu_job_gpus,
    var.ml_cpu_job_vcpus,
    var.ml_cpu_job_memory,
    var.batch_job_attempts,
    var.batch_job_timeout_seconds,
    var.batch_runnable_timeout_seconds,
    var.job_max_vcpus,
    var.job_max_memory,
    var.job_max_gpus,
    var.job_min_memory,
    var.images_per_child,
    var.gpu_instance_type,
    var.gpu_fallback_instance_types,
    var.gpu_ami_id,
    var.gpu_spot_max_price,
    var.gpu_root_volume_size,
    var.lambda_architecture,
    var.lambda_log_level,
    var.lambda_tracing_mode,
    var.idle_check_schedule,
    var.controller_health_timeout_seconds,
    var.unreachable_grace_seconds,
  ]
}

# Apart: Terraform skips a validation that refers to a variable which is itself invalid, so the
# limits other validations compare against are tested on their own.
run "limits_just_below_the_minimum" {
  command = plan

  variables {
    batch_gpu_max_vcpus              = 3
    batch_cpu_max_vcpus              = 1
    ml_gpu_job_vcpus                 = 1
    ml_cpu_job_vcpus                 = 1
    controller_start_timeout_seconds = 29
  }

  expect_failures = [
    var.batch_gpu_max_vcpus,
    var.batch_cpu_max_vcpus,
    var.controller_start_timeout_seconds,
  ]
}

run "values_just_above_the_maximum" {
  command = plan

  variables {
    project_name                      = "abcdefghij0123456789x"
    environment                       = "abcdefghijk"
    kms_deletion_window_in_days       = 31
    log_retention_days                = 3654
    vpc_cidr                          = "10.0.0.0/15"
    az_count                          = 7
    azs                               = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1e", "us-east-1f", "us-east-1g"]
    interface_endpoint_az_count       = 7
    extra_egress_tcp_ports            = [65536]
    cpu_container_image               = "123456789012.dkr.ecr.us-east-1.amazonaws.com/face-embed-cpu:${join("", [for i in range(129) : "t"])}"
    det_size                          = 2049
    index_name                        = join("", [for i in range(256) : "x"])
    ml_gpu_job_gpus                   = 9
    batch_job_attempts                = 11
    batch_runnable_timeout_seconds    = 86401
    gpu_root_volume_size              = 16385
    ml_gpu_job_vcpus                  = 17 # above batch_gpu_max_vcpus (16): could never run
    ml_cpu_job_vcpus                  = 33 # above batch_cpu_max_vcpus (32)
    controller_start_timeout_seconds  = 451
    controller_health_timeout_seconds = 450 # with the start timeout above the controller's 900 s
  }

  expect_failures = [
    var.project_name,
    var.environment,
    var.kms_deletion_window_in_days,
    var.log_retention_days,
    var.vpc_cidr,
    var.az_count,
    var.azs,
    var.interface_endpoint_az_count,
    var.extra_egress_tcp_ports,
    var.cpu_container_image,
    var.det_size,
    var.index_name,
    var.ml_gpu_job_gpus,
    var.batch_job_attempts,
    var.batch_runnable_timeout_seconds,
    var.gpu_root_volume_size,
    var.ml_gpu_job_vcpus,
    var.ml_cpu_job_vcpus,
    var.controller_health_timeout_seconds,
  ]
}

# The provider refuses a CIDR whose host bits are set: the validations must refuse it first.
run "cidrs_that_are_not_network_addresses" {
  command = plan

  variables {
    vpc_cidr          = "10.42.0.1/16"
    app_allowed_cidrs = ["10.8.0.1/16"]
  }

  expect_failures = [var.vpc_cidr, var.app_allowed_cidrs]
}
