# S3 upload events -> this queue -> the dispatcher, through an event source mapping whose batching
# window collects the uploads of a short window into one invocation (one start_and_process).

data "aws_caller_identity" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id

  names = {
    queue = "${var.name_prefix}-s3-events"
  }

  # AWS: at least six times the function's timeout, plus the batching window, so that a batch still
  # being collected or processed (and Lambda's retries of a throttled invocation) never becomes
  # visible again and is handed out twice.
  visibility_timeout_seconds = 6 * var.function_timeout_seconds + var.batching_window_seconds
}

resource "aws_sqs_queue" "events" {
  name                       = local.names.queue
  visibility_timeout_seconds = local.visibility_timeout_seconds
  message_retention_seconds  = var.message_retention_seconds

  # Customer managed key when given (the key policy must let s3.amazonaws.com use it, see the kms
  # module); SQS-managed SSE otherwise.
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 3600
  sqs_managed_sse_enabled           = var.kms_key_arn == null ? true : null

  redrive_policy = jsonencode({
    deadLetterTargetArn = var.dead_letter_queue_arn
    maxReceiveCount     = var.max_receive_count
  })

  tags = merge(var.tags, { Name = local.names.queue })

  lifecycle {
    precondition {
      condition     = local.visibility_timeout_seconds <= 43200
      error_message = "6 x function_timeout_seconds + batching_window_seconds must fit SQS's 12-hour visibility timeout."
    }
  }
}

data "aws_iam_policy_document" "events" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [aws_sqs_queue.events.arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  # Only the input bucket's notifications, of this account, may send.
  statement {
    sid       = "InputBucketSendsObjectEvents"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.events.arn]

    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [var.source_bucket_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_sqs_queue_policy" "events" {
  queue_url = aws_sqs_queue.events.id
  policy    = data.aws_iam_policy_document.events.json
}

# The dead-letter queue takes redriven messages from this queue only (SQS's RedriveAllowPolicy):
# no other queue of the account can make it its dead-letter queue and mix its failures in.
resource "aws_sqs_queue_redrive_allow_policy" "dead_letter" {
  queue_url = var.dead_letter_queue_url

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.events.arn]
  })
}

# The function's role polls this queue and nothing else (Lambda's pollers use the role).
data "aws_iam_policy_document" "consume" {
  statement {
    sid       = "ConsumeS3EventQueue"
    actions   = ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
    resources = [aws_sqs_queue.events.arn]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn != null ? [1] : []

    content {
      sid       = "DecryptS3EventQueue"
      actions   = ["kms:Decrypt"]
      resources = [var.kms_key_arn]
    }
  }
}

resource "aws_iam_role_policy" "consume" {
  name   = "s3-event-queue"
  role   = var.function_role_name
  policy = data.aws_iam_policy_document.consume.json
}

resource "aws_lambda_event_source_mapping" "events" {
  event_source_arn                   = aws_sqs_queue.events.arn
  function_name                      = var.function_name
  batch_size                         = var.batch_size
  maximum_batching_window_in_seconds = var.batching_window_seconds
  # The dispatcher answers with the records that failed transiently; only those come back.
  function_response_types = ["ReportBatchItemFailures"]

  dynamic "scaling_config" {
    for_each = var.maximum_concurrency != null ? [1] : []

    content {
      maximum_concurrency = var.maximum_concurrency
    }
  }

  tags = var.tags

  lifecycle {
    precondition {
      condition     = var.batch_size <= 10 || var.batching_window_seconds >= 1
      error_message = "A batch_size above 10 needs batching_window_seconds of at least 1 (an SQS event source rule)."
    }
  }

  # Lambda checks the role's permissions on the queue when the mapping is created.
  depends_on = [aws_iam_role_policy.consume]
}
