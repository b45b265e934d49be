# Refused on purpose: run by tests/terraform/test_terraform_test.py (terraform test
# -test-directory=tests/refused), which requires this run to fail with exactly the validations of
# the variables it sets. The event queue exists only with S3 events on, so this file turns them on.

mock_provider "aws" {
  source          = "./tests/mocks"
  override_during = plan
}

variables {
  container_image               = "123456789012.dkr.ecr.us-east-1.amazonaws.com/face-embed:0.1.0"
  lambda_build_dir              = "tests/fixtures/lambda"
  enable_s3_event_notifications = true
}

run "s3_event_queue_just_below_the_minimum" {
  command = plan

  variables {
    s3_event_batching_window_seconds = -1
    s3_event_batch_size              = 0
    s3_event_maximum_concurrency     = 1
  }
}
