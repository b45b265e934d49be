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

# The provider refuses a CIDR whose host bits are set: the validations must refuse it first.
run "cidrs_that_are_not_network_addresses" {
  command = plan

  variables {
    vpc_cidr          = "10.42.0.1/16"
    app_allowed_cidrs = ["10.8.0.1/16"]
  }
}
