data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  topic_names = {
    trigger       = "${var.name_prefix}-trigger-events"
    notifications = "${var.name_prefix}-notifications"
  }

  # AWS-managed SNS key when no customer managed key is given. S3 event notifications need the
  # customer managed key: S3 cannot use aws/sns.
  kms_master_key_id = var.kms_key_arn != null ? var.kms_key_arn : "alias/aws/sns"
}

################################################################################
# Trigger topic: producers (and optionally the input bucket) publish work; the dispatcher consumes
################################################################################

resource "aws_sns_topic" "trigger" {
  name              = local.topic_names.trigger
  display_name      = "Face embedding work triggers"
  kms_master_key_id = local.kms_master_key_id

  tags = merge(var.tags, { Name = local.topic_names.trigger })

  lifecycle {
    precondition {
      condition     = length(var.s3_publisher_bucket_arns) == 0 || var.kms_key_arn != null
      error_message = "S3 cannot publish to a topic encrypted with the AWS-managed key alias/aws/sns: give kms_key_arn when s3_publisher_bucket_arns is set."
    }
  }
}

data "aws_iam_policy_document" "trigger" {
  statement {
    sid = "AccountOwnsTheTopic"
    actions = [
      "SNS:AddPermission",
      "SNS:DeleteTopic",
      "SNS:GetTopicAttributes",
      "SNS:ListSubscriptionsByTopic",
      "SNS:Publish",
      "SNS:RemovePermission",
      "SNS:SetTopicAttributes",
      "SNS:Subscribe",
    ]
    resources = [aws_sns_topic.trigger.arn]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  dynamic "statement" {
    for_each = length(var.s3_publisher_bucket_arns) > 0 ? [1] : []

    content {
      sid       = "InputBucketPublishesObjectEvents"
      actions   = ["SNS:Publish"]
      resources = [aws_sns_topic.trigger.arn]

      principals {
        type        = "Service"
        identifiers = ["s3.amazonaws.com"]
      }

      condition {
        test     = "ArnLike"
        variable = "aws:SourceArn"
        values   = var.s3_publisher_bucket_arns
      }

      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [local.account_id]
      }
    }
  }

  dynamic "statement" {
    for_each = length(var.trigger_publisher_principal_arns) > 0 ? [1] : []

    content {
      sid       = "NamedProducersPublish"
      actions   = ["SNS:Publish"]
      resources = [aws_sns_topic.trigger.arn]

      principals {
        type        = "AWS"
        identifiers = var.trigger_publisher_principal_arns
      }
    }
  }
}

resource "aws_sns_topic_policy" "trigger" {
  arn    = aws_sns_topic.trigger.arn
  policy = data.aws_iam_policy_document.trigger.json
}

# The dispatcher is subscribed; deliveries SNS cannot make (throttling, missing permission) go to
# the trigger DLQ through the subscription's redrive policy.
resource "aws_lambda_permission" "sns_invokes_dispatcher" {
  statement_id  = "AllowTriggerTopic"
  action        = "lambda:InvokeFunction"
  function_name = var.dispatcher_function_arn
  principal     = "sns.amazonaws.com"
  source_arn    = aws_sns_topic.trigger.arn
}

resource "aws_sns_topic_subscription" "dispatcher" {
  topic_arn = aws_sns_topic.trigger.arn
  protocol  = "lambda"
  endpoint  = var.dispatcher_function_arn

  redrive_policy = jsonencode({
    deadLetterTargetArn = var.trigger_dlq_arn
  })

  depends_on = [aws_lambda_permission.sns_invokes_dispatcher]
}

################################################################################
# Notifications topic: job results, instance state, DLQ alarms -> people
################################################################################

resource "aws_sns_topic" "notifications" {
  name              = local.topic_names.notifications
  display_name      = "Face embedding notifications"
  kms_master_key_id = local.kms_master_key_id

  tags = merge(var.tags, { Name = local.topic_names.notifications })
}

# Each address receives a confirmation mail; nothing is delivered until the link in it is followed.
resource "aws_sns_topic_subscription" "email" {
  for_each = toset(var.notification_emails)

  topic_arn = aws_sns_topic.notifications.arn
  protocol  = "email"
  endpoint  = each.value
}
