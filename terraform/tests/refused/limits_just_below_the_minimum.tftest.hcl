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

# Apart: Terraform skips a validation that refers to a variable which is itself invalid, so the
# limits other validations compare against are tested on their own; and the key's deletion window,
# which only a created key has (the other runs bring an existing key).
run "limits_just_below_the_minimum" {
  command = plan

  variables {
    batch_gpu_max_vcpus              = 3
    batch_cpu_max_vcpus              = 1
    kms_deletion_window_in_days      = 6
    controller_start_timeout_seconds = 29
  }
}
