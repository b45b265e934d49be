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

# Apart: a refused name leaves every name built from it unknown, so the modules' validations of
# values that depend on it (the KMS key ARN, the API key parameter) would not run.
run "names_just_below_the_minimum" {
  command = plan

  variables {
    aws_region   = "useast1"
    project_name = "ab"
    environment  = ""
  }
}
