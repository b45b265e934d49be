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

run "names_just_above_the_maximum" {
  command = plan

  variables {
    aws_region   = "us-east-1a"
    project_name = "abcdefghij0123456789x"
    environment  = "abcdefghijk"
  }
}
