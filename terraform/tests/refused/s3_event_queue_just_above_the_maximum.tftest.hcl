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

run "s3_event_queue_just_above_the_maximum" {
  command = plan

  variables {
    s3_event_batching_window_seconds = 301
    s3_event_batch_size              = 10001
    s3_event_maximum_concurrency     = 1001
    kms_key_arn                      = "arn:aws:kms:us-east-1:123456789012:alias/mine" # an alias, not a key: the queue's key too
  }
}
