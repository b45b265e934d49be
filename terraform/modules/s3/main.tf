data "aws_caller_identity" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id

  # Bucket names are global: the account id keeps them unique per account (terraform/naming.json).
  bucket_names = {
    input  = "${var.name_prefix}-ml-input-${local.account_id}"
    output = "${var.name_prefix}-ml-output-${local.account_id}"
    models = "${var.name_prefix}-models-${local.account_id}"
  }
  access_logs_bucket_name = "${var.name_prefix}-s3-access-logs-${local.account_id}"

  kms_encrypted = var.kms_key_arn != null
}

################################################################################
# Data buckets: input, output, models
################################################################################

resource "aws_s3_bucket" "this" {
  # checkov:skip=CKV_AWS_144:Cross-region replication needs a second-region bucket and doubles storage cost; versioning is on, so replication can be added where a policy requires it.
  # checkov:skip=CKV2_AWS_62:Only the input bucket has consumers of object events, and they are optional (enable_event_notifications sends them to the S3 event queue); output and models buckets have none.
  for_each = local.bucket_names

  bucket        = each.value
  force_destroy = var.force_destroy

  tags = merge(var.tags, { Name = each.value, Purpose = each.key })
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = aws_s3_bucket.this

  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = local.kms_encrypted ? "aws:kms" : "AES256"
      kms_master_key_id = var.kms_key_arn
    }
    # S3 Bucket Keys cut KMS requests (and their cost) by orders of magnitude.
    bucket_key_enabled = local.kms_encrypted
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id

  rule {
    id     = "expire-old-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }

    expiration {
      expired_object_delete_marker = true
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_upload_days
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

data "aws_iam_policy_document" "this" {
  for_each = aws_s3_bucket.this

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [each.value.arn, "${each.value.arn}/*"]

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

  statement {
    sid       = "DenyOutdatedTls"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [each.value.arn, "${each.value.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id
  policy = data.aws_iam_policy_document.this[each.key].json

  depends_on = [aws_s3_bucket_public_access_block.this]
}

resource "aws_s3_bucket_logging" "this" {
  for_each = var.enable_access_logging ? aws_s3_bucket.this : {}

  bucket        = each.value.id
  target_bucket = aws_s3_bucket.access_logs[0].id
  target_prefix = "${each.key}/"

  # S3 checks that the target bucket's policy admits the logging service.
  depends_on = [aws_s3_bucket_policy.access_logs]
}

# Input bucket -> the S3 event queue (modules/event_queue), which the dispatcher consumes with a
# batching window. Off by default: producers usually publish trigger messages themselves. The queue
# policy must allow this bucket first (event_queue's queue_arn output is read after it).
resource "aws_s3_bucket_notification" "input" {
  count = var.enable_event_notifications ? 1 : 0

  bucket = aws_s3_bucket.this["input"].id

  queue {
    queue_arn     = var.event_queue_arn
    events        = var.event_notification_events
    filter_prefix = var.event_notification_filter_prefix != "" ? var.event_notification_filter_prefix : null
    filter_suffix = var.event_notification_filter_suffix != "" ? var.event_notification_filter_suffix : null
  }

  lifecycle {
    precondition {
      condition     = var.event_queue_arn != null
      error_message = "enable_event_notifications needs event_queue_arn."
    }
  }
}

################################################################################
# Access-log bucket
################################################################################

resource "aws_s3_bucket" "access_logs" {
  # checkov:skip=CKV_AWS_144:Access logs are an audit aid, not primary data; replicating them doubles cost.
  # checkov:skip=CKV_AWS_145:S3 server access logging can only deliver to SSE-S3 (AES256) buckets, not SSE-KMS.
  # checkov:skip=CKV2_AWS_62:Nothing consumes events about new log objects.
  count = var.enable_access_logging ? 1 : 0

  bucket        = local.access_logs_bucket_name
  force_destroy = var.force_destroy

  tags = merge(var.tags, { Name = local.access_logs_bucket_name, Purpose = "access-logs" })
}

resource "aws_s3_bucket_ownership_controls" "access_logs" {
  count = var.enable_access_logging ? 1 : 0

  bucket = aws_s3_bucket.access_logs[0].id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "access_logs" {
  count = var.enable_access_logging ? 1 : 0

  bucket                  = aws_s3_bucket.access_logs[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "access_logs" {
  count = var.enable_access_logging ? 1 : 0

  bucket = aws_s3_bucket.access_logs[0].id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "access_logs" {
  # Server access logs can only be delivered to SSE-S3 (AES256) buckets.
  count = var.enable_access_logging ? 1 : 0

  bucket = aws_s3_bucket.access_logs[0].id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "access_logs" {
  count = var.enable_access_logging ? 1 : 0

  bucket = aws_s3_bucket.access_logs[0].id

  rule {
    id     = "expire-logs"
    status = "Enabled"

    filter {}

    expiration {
      days = var.access_log_retention_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 1
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_upload_days
    }
  }

  depends_on = [aws_s3_bucket_versioning.access_logs]
}

data "aws_iam_policy_document" "access_logs" {
  count = var.enable_access_logging ? 1 : 0

  statement {
    sid       = "S3ServerAccessLogsFromTheDataBuckets"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.access_logs[0].arn}/*"]

    principals {
      type        = "Service"
      identifiers = ["logging.s3.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [for bucket in aws_s3_bucket.this : bucket.arn]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.access_logs[0].arn, "${aws_s3_bucket.access_logs[0].arn}/*"]

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
}

resource "aws_s3_bucket_policy" "access_logs" {
  count = var.enable_access_logging ? 1 : 0

  bucket = aws_s3_bucket.access_logs[0].id
  policy = data.aws_iam_policy_document.access_logs[0].json

  depends_on = [aws_s3_bucket_public_access_block.access_logs]
}
