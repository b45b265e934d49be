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

run "values_just_above_the_maximum" {
  command = plan

  variables {
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
    ml_gpu_job_vcpus                  = 17                  # above batch_gpu_max_vcpus (16): could never run
    ml_cpu_job_vcpus                  = 33                  # above batch_cpu_max_vcpus (32)
    gpu_instance_type                 = "g4dn.xlarge.metal" # one part too many
    controller_start_timeout_seconds  = 451
    controller_health_timeout_seconds = 450 # with the start timeout above the controller's 900 s
  }
}
