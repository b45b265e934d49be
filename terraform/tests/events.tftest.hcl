# S3 upload events: modules/s3 sends the input bucket's ObjectCreated events under the prefix to the
# S3 event queue (modules/event_queue), which only that bucket may send to and which the dispatcher
# consumes through an event source mapping with a batching window and partial batch responses.

mock_provider "aws" {
  source          = "./tests/mocks"
  override_during = plan
}

variables {
  container_image  = "123456789012.dkr.ecr.us-east-1.amazonaws.com/face-embed:0.1.0"
  lambda_build_dir = "tests/fixtures/lambda"
}

run "input_bucket_notifies_the_event_queue" {
  command = plan

  module {
    source = "./modules/s3"
  }

  variables {
    name_prefix                      = "face-embed-dev"
    enable_event_notifications       = true
    event_queue_arn                  = "arn:aws:sqs:us-east-1:123456789012:face-embed-dev-s3-events"
    event_notification_filter_prefix = "incoming/"
    event_notification_filter_suffix = ".json"
  }

  assert {
    condition = (
      aws_s3_bucket_notification.input[0].queue[0].queue_arn == "arn:aws:sqs:us-east-1:123456789012:face-embed-dev-s3-events" &&
      aws_s3_bucket_notification.input[0].queue[0].filter_prefix == "incoming/" &&
      aws_s3_bucket_notification.input[0].queue[0].filter_suffix == ".json" &&
      contains(aws_s3_bucket_notification.input[0].queue[0].events, "s3:ObjectCreated:*") &&
      length(aws_s3_bucket_notification.input[0].topic) == 0
    )
    error_message = "ObjectCreated events of the input bucket under the prefix must go to the event queue (and nowhere else)."
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

run "event_queue_batches_events_for_the_dispatcher" {
  command = plan

  module {
    source = "./modules/event_queue"
  }

  variables {
    name_prefix              = "face-embed-dev"
    kms_key_arn              = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-1111-2222-3333-444455556666"
    dead_letter_queue_arn    = "arn:aws:sqs:us-east-1:123456789012:face-embed-dev-s3-events-dlq"
    dead_letter_queue_url    = "https://sqs.us-east-1.amazonaws.com/123456789012/face-embed-dev-s3-events-dlq"
    source_bucket_arn        = "arn:aws:s3:::face-embed-dev-ml-input-123456789012"
    function_name            = "arn:aws:lambda:us-east-1:123456789012:function:face-embed-dev-dispatcher"
    function_role_name       = "face-embed-dev-dispatcher"
    function_timeout_seconds = 300
    batching_window_seconds  = 20
    batch_size               = 500
    max_receive_count        = 4
    maximum_concurrency      = 3
  }

  assert {
    condition = (
      aws_lambda_event_source_mapping.events.maximum_batching_window_in_seconds == 20 &&
      aws_lambda_event_source_mapping.events.batch_size == 500 &&
      aws_lambda_event_source_mapping.events.function_response_types == toset(["ReportBatchItemFailures"]) &&
      aws_lambda_event_source_mapping.events.function_name == "arn:aws:lambda:us-east-1:123456789012:function:face-embed-dev-dispatcher" &&
      aws_lambda_event_source_mapping.events.event_source_arn == aws_sqs_queue.events.arn
    )
    error_message = "The dispatcher must consume the queue with the batching window, the batch size and partial batch responses."
  }

  assert {
    condition     = aws_sqs_queue.events.name == "face-embed-dev-s3-events" && aws_sqs_queue.events.kms_master_key_id == "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-1111-2222-3333-444455556666"
    error_message = "The queue must be encrypted with the stack's KMS key."
  }

  assert {
    condition     = jsondecode(aws_sqs_queue.events.redrive_policy) == { deadLetterTargetArn = "arn:aws:sqs:us-east-1:123456789012:face-embed-dev-s3-events-dlq", maxReceiveCount = 4 }
    error_message = "Events failed max_receive_count times must move to the dead-letter queue."
  }

  assert {
    condition = (
      aws_sqs_queue_redrive_allow_policy.dead_letter.queue_url == "https://sqs.us-east-1.amazonaws.com/123456789012/face-embed-dev-s3-events-dlq" &&
      jsondecode(aws_sqs_queue_redrive_allow_policy.dead_letter.redrive_allow_policy) == { redrivePermission = "byQueue", sourceQueueArns = [aws_sqs_queue.events.arn] }
    )
    error_message = "The dead-letter queue must admit redrives from this queue only."
  }

  assert {
    condition     = aws_lambda_event_source_mapping.events.scaling_config[0].maximum_concurrency == 3
    error_message = "maximum_concurrency must reach the mapping's scaling config."
  }

  assert {
    condition     = aws_sqs_queue.events.visibility_timeout_seconds == 6 * 300 + 20
    error_message = "The visibility timeout must be 6 x the dispatcher's timeout + the batching window: ${aws_sqs_queue.events.visibility_timeout_seconds}"
  }

  assert {
    condition = anytrue([
      for statement in data.aws_iam_policy_document.events.statement :
      statement.effect != "Deny" && statement.actions == toset(["sqs:SendMessage"]) &&
      anytrue([for principal in statement.principals : principal.identifiers == toset(["s3.amazonaws.com"])]) &&
      anytrue([for condition in statement.condition : condition.test == "ArnEquals" && condition.variable == "aws:SourceArn" && condition.values == tolist(["arn:aws:s3:::face-embed-dev-ml-input-123456789012"])]) &&
      anytrue([for condition in statement.condition : condition.variable == "aws:SourceAccount" && condition.values == tolist(["123456789012"])])
    ])
    error_message = "Only the input bucket (of this account) may send to the queue."
  }

  assert {
    condition = length([
      for statement in data.aws_iam_policy_document.events.statement : statement if statement.effect != "Deny"
    ]) == 1
    error_message = "The queue policy must allow no other sender."
  }

  assert {
    condition = (
      aws_iam_role_policy.consume.role == "face-embed-dev-dispatcher" &&
      jsonencode([for statement in data.aws_iam_policy_document.consume.statement : [sort(statement.actions), sort(statement.resources)]]) == jsonencode([
        [["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"], [aws_sqs_queue.events.arn]],
        [["kms:Decrypt"], ["arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-1111-2222-3333-444455556666"]],
      ])
    )
    error_message = "The dispatcher's role must get exactly Receive/Delete/GetQueueAttributes on this queue and Decrypt on the key."
  }
}

run "a_large_batch_needs_a_window" {
  command = plan

  module {
    source = "./modules/event_queue"
  }

  variables {
    name_prefix              = "face-embed-dev"
    dead_letter_queue_arn    = "arn:aws:sqs:us-east-1:123456789012:face-embed-dev-s3-events-dlq"
    dead_letter_queue_url    = "https://sqs.us-east-1.amazonaws.com/123456789012/face-embed-dev-s3-events-dlq"
    source_bucket_arn        = "arn:aws:s3:::face-embed-dev-ml-input-123456789012"
    function_name            = "face-embed-dev-dispatcher"
    function_role_name       = "face-embed-dev-dispatcher"
    function_timeout_seconds = 300
    batching_window_seconds  = 0
    batch_size               = 11
  }

  expect_failures = [aws_lambda_event_source_mapping.events]
}

# The whole stack with S3 events on, at the smallest admitted window and batch size.
run "stack_with_s3_events_smallest_window" {
  command = plan

  variables {
    enable_s3_event_notifications    = true
    s3_event_batching_window_seconds = 0
    s3_event_batch_size              = 1
    s3_event_maximum_concurrency     = 2
  }

  assert {
    condition = (
      module.event_queue[0].queue_arn == module.s3.input_bucket_notification_queue_arn &&
      output.s3_event_queue_url != null && output.s3_event_dlq_url != null
    )
    error_message = "The input bucket must notify the event queue, and both queues must be outputs."
  }

  assert {
    condition = (
      module.event_queue[0].event_source_mapping_batching_window_seconds == 0 &&
      module.event_queue[0].event_source_mapping_batch_size == 1 &&
      module.event_queue[0].event_source_mapping_maximum_concurrency == 2
    )
    error_message = "The root's window, batch size and maximum concurrency must reach the event source mapping."
  }
}

run "stack_with_s3_events_largest_window" {
  command = plan

  variables {
    enable_s3_event_notifications    = true
    s3_event_batching_window_seconds = 300
    s3_event_batch_size              = 10000
    s3_event_maximum_concurrency     = 1000
  }

  assert {
    condition = (
      module.event_queue[0].event_source_mapping_batching_window_seconds == 300 &&
      module.event_queue[0].event_source_mapping_batch_size == 10000 &&
      module.event_queue[0].event_source_mapping_maximum_concurrency == 1000
    )
    error_message = "The root's window, batch size and maximum concurrency must reach the event source mapping."
  }
}

run "nothing_of_the_event_queue_without_s3_events" {
  command = plan

  variables {
    enable_s3_event_notifications    = false
    s3_event_batching_window_seconds = 30
  }

  assert {
    condition     = length(module.event_queue) == 0 && length(module.s3_event_dlq) == 0 && output.s3_event_queue_url == null && output.s3_event_dlq_url == null
    error_message = "With S3 events off, no event queue, DLQ, mapping or role policy may be created."
  }
}
