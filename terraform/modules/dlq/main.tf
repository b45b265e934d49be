resource "aws_sqs_queue" "this" {
  name                      = var.name
  message_retention_seconds = var.message_retention_seconds

  # Customer managed key when given (the AWS services that deliver here need it in the key policy,
  # see the kms module); SQS-managed SSE otherwise.
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 3600
  sqs_managed_sse_enabled           = var.kms_key_arn == null ? true : null

  tags = merge(var.tags, { Name = var.name })
}

data "aws_iam_policy_document" "this" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [aws_sqs_queue.this.arn]

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

  # AWS services that dead-letter into this queue (an SNS subscription's redrive policy, an
  # EventBridge target's DLQ), each limited to its one source. Lambda's own DLQ delivery uses the
  # function's execution role instead, which IAM grants.
  dynamic "statement" {
    for_each = var.allowed_senders

    content {
      sid       = "Allow${replace(title(replace(statement.value.service, ".amazonaws.com", "")), "/[^A-Za-z0-9]/", "")}${statement.key}"
      actions   = ["sqs:SendMessage"]
      resources = [aws_sqs_queue.this.arn]

      principals {
        type        = "Service"
        identifiers = [statement.value.service]
      }

      condition {
        test     = "ArnEquals"
        variable = "aws:SourceArn"
        values   = [statement.value.source_arn]
      }
    }
  }
}

resource "aws_sqs_queue_policy" "this" {
  queue_url = aws_sqs_queue.this.id
  policy    = data.aws_iam_policy_document.this.json
}

# A message in a dead-letter queue is work that was lost: tell someone.
resource "aws_cloudwatch_metric_alarm" "not_empty" {
  count = length(var.alarm_actions) > 0 ? 1 : 0

  alarm_name          = "${var.name}-not-empty"
  alarm_description   = "Messages are waiting in the dead-letter queue ${var.name}: inspect and redrive or delete them."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.this.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  tags = var.tags
}
