# S3 events into the trigger topic: modules/s3 sends the input bucket's ObjectCreated events under
# the prefix, and modules/sns lets that bucket (and only it) publish.

mock_provider "aws" {
  source          = "./tests/mocks"
  override_during = plan
}

run "input_bucket_notifies_the_trigger_topic" {
  command = plan

  module {
    source = "./modules/s3"
  }

  variables {
    name_prefix                      = "face-embed-dev"
    enable_event_notifications       = true
    trigger_topic_arn                = "arn:aws:sns:us-east-1:123456789012:face-embed-dev-trigger-events"
    event_notification_filter_prefix = "incoming/"
    event_notification_filter_suffix = ".json"
  }

  assert {
    condition = (
      aws_s3_bucket_notification.input[0].topic[0].topic_arn == "arn:aws:sns:us-east-1:123456789012:face-embed-dev-trigger-events" &&
      aws_s3_bucket_notification.input[0].topic[0].filter_prefix == "incoming/" &&
      aws_s3_bucket_notification.input[0].topic[0].filter_suffix == ".json" &&
      contains(aws_s3_bucket_notification.input[0].topic[0].events, "s3:ObjectCreated:*")
    )
    error_message = "ObjectCreated events of the input bucket under the prefix must go to the trigger topic."
  }
}

run "no_events_by_default" {
  command = plan

  module {
    source = "./modules/s3"
  }

  variables {
    name_prefix = "face-embed-dev"
  }

  assert {
    condition     = length(aws_s3_bucket_notification.input) == 0
    error_message = "Event notifications are off unless enabled."
  }
}

run "only_the_input_bucket_may_publish" {
  command = plan

  module {
    source = "./modules/sns"
  }

  variables {
    name_prefix              = "face-embed-dev"
    dispatcher_function_arn  = "arn:aws:lambda:us-east-1:123456789012:function:face-embed-dev-dispatcher"
    trigger_dlq_arn          = "arn:aws:sqs:us-east-1:123456789012:face-embed-dev-trigger-dlq"
    s3_publisher_bucket_arns = ["arn:aws:s3:::face-embed-dev-ml-input-123456789012"]
    kms_key_arn              = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-1111-2222-3333-444455556666"
    notification_emails      = ["ops@example.com"]
  }

  assert {
    condition = anytrue([
      for statement in data.aws_iam_policy_document.trigger.statement :
      anytrue([for principal in statement.principals : contains(principal.identifiers, "s3.amazonaws.com")]) &&
      anytrue([for condition in statement.condition : condition.variable == "aws:SourceArn" && toset(condition.values) == toset(["arn:aws:s3:::face-embed-dev-ml-input-123456789012"])])
    ])
    error_message = "S3 may publish to the trigger topic for the input bucket only."
  }

  assert {
    condition     = aws_sns_topic_subscription.email["ops@example.com"].protocol == "email" && aws_sns_topic_subscription.email["ops@example.com"].topic_arn == aws_sns_topic.notifications.arn
    error_message = "Notification e-mails subscribe to the notifications topic."
  }
}
