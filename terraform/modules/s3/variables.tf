variable "name_prefix" {
  type        = string
  description = "Prefix of the bucket names (<project>-<environment>); the account id is appended."
  nullable    = false

  validation {
    # 63 characters max per bucket: the longest suffix is -s3-access-logs-<12 digits> (28).
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,33}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-35 lowercase letters, digits or hyphens (bucket name rules)."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key for SSE-KMS default encryption (with S3 Bucket Keys). Null: SSE-S3 (AES256)."
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be null or a KMS key ARN."
  }
}

variable "force_destroy" {
  type        = bool
  description = "Let terraform destroy delete non-empty buckets (all objects and versions are lost). Keep false outside throwaway environments."
  default     = false
  nullable    = false
}

variable "noncurrent_version_expiration_days" {
  type        = number
  description = "Days after which overwritten or deleted object versions are removed."
  default     = 30
  nullable    = false

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1 && floor(var.noncurrent_version_expiration_days) == var.noncurrent_version_expiration_days
    error_message = "noncurrent_version_expiration_days must be a whole number of at least 1."
  }
}

variable "abort_incomplete_multipart_upload_days" {
  type        = number
  description = "Days after which unfinished multipart uploads are aborted (their parts cost storage)."
  default     = 7
  nullable    = false

  validation {
    condition     = var.abort_incomplete_multipart_upload_days >= 1 && floor(var.abort_incomplete_multipart_upload_days) == var.abort_incomplete_multipart_upload_days
    error_message = "abort_incomplete_multipart_upload_days must be a whole number of at least 1."
  }
}

variable "enable_access_logging" {
  type        = bool
  description = "Log requests to the data buckets into a separate access-log bucket (SSE-S3, expires after access_log_retention_days)."
  default     = true
  nullable    = false
}

variable "access_log_retention_days" {
  type        = number
  description = "Days access-log objects are kept."
  default     = 90
  nullable    = false

  validation {
    condition     = var.access_log_retention_days >= 1 && floor(var.access_log_retention_days) == var.access_log_retention_days
    error_message = "access_log_retention_days must be a whole number of at least 1."
  }
}

variable "enable_event_notifications" {
  type        = bool
  description = "Send object events of the input bucket to event_queue_arn."
  default     = false
  nullable    = false
}

variable "event_queue_arn" {
  type        = string
  description = "SQS queue that receives the input bucket's object events (required when enable_event_notifications). Its policy must allow this bucket to send."
  default     = null

  validation {
    condition     = var.event_queue_arn == null || can(regex("^arn:aws[a-z-]*:sqs:[a-z0-9-]+:[0-9]{12}:.+$", var.event_queue_arn))
    error_message = "event_queue_arn must be null or an SQS queue ARN."
  }
}

variable "event_notification_events" {
  type        = list(string)
  description = "S3 event types sent to the event queue."
  default     = ["s3:ObjectCreated:*"]
  nullable    = false

  validation {
    condition     = length(var.event_notification_events) > 0 && alltrue([for event in var.event_notification_events : startswith(event, "s3:")])
    error_message = "event_notification_events must list S3 event types such as s3:ObjectCreated:*."
  }
}

variable "event_notification_filter_prefix" {
  type        = string
  description = "Only keys under this prefix raise events. Keep it away from the prefix the app writes to (S3_UPLOAD_PATH) so results never re-trigger work."
  default     = "incoming/"
  nullable    = false
}

variable "event_notification_filter_suffix" {
  type        = string
  description = "Only keys with this suffix raise events (empty: any)."
  default     = ""
  nullable    = false
}

variable "tags" {
  type        = map(string)
  description = "Tags for every bucket."
  default     = {}
  nullable    = false
}
