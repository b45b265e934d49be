data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
}

# Key policy. In a key policy, resource "*" means "this key": the policy is attached to one key only.
data "aws_iam_policy_document" "this" {
  # checkov:skip=CKV_AWS_109:Key policy: "*" is this key, and the account root must be able to manage it (AWS default key policy).
  # checkov:skip=CKV_AWS_111:Key policy: "*" is this key; write access is limited to the account (IAM decides who) and to named AWS services.
  # checkov:skip=CKV_AWS_356:Key policy: a key policy can only name "*" (this key) as its resource.
  statement {
    sid = "AccountAdministersAndDelegatesThroughIam"
    actions = [
      "kms:CancelKeyDeletion",
      "kms:Create*",
      "kms:Decrypt",
      "kms:Delete*",
      "kms:Describe*",
      "kms:Disable*",
      "kms:Enable*",
      "kms:Encrypt",
      "kms:GenerateDataKey*",
      "kms:Get*",
      "kms:List*",
      "kms:Put*",
      "kms:ReEncrypt*",
      "kms:Revoke*",
      "kms:RetireGrant",
      "kms:RotateKeyOnDemand",
      "kms:ScheduleKeyDeletion",
      "kms:TagResource",
      "kms:UntagResource",
      "kms:Update*",
    ]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid = "CloudWatchLogsEncryptsThisAccountsLogGroups"
    actions = [
      "kms:Decrypt*",
      "kms:Describe*",
      "kms:Encrypt*",
      "kms:GenerateDataKey*",
      "kms:ReEncrypt*",
    ]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"]
    }
  }

  dynamic "statement" {
    for_each = length(var.service_principals) > 0 ? [1] : []

    content {
      # AWS services that deliver into encrypted topics and queues (S3 -> SNS, SNS -> SQS DLQ,
      # EventBridge -> SQS DLQ). AWS documents these grants without source conditions: EventBridge's
      # KMS requests carry no aws:SourceArn/aws:SourceAccount. The topic and queue policies decide
      # which source may deliver.
      sid       = "AwsServicesDeliverToEncryptedTopicsAndQueues"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
      resources = ["*"]

      principals {
        type        = "Service"
        identifiers = var.service_principals
      }
    }
  }
}

resource "aws_kms_key" "this" {
  description             = "Encrypts ${var.name}: S3 objects, SNS topics, SQS queues, logs, DynamoDB, SSM parameters and Lambda environments"
  deletion_window_in_days = var.deletion_window_in_days
  enable_key_rotation     = true
  rotation_period_in_days = var.rotation_period_in_days
  policy                  = data.aws_iam_policy_document.this.json

  tags = merge(var.tags, { Name = var.name })
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}
