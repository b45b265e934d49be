variable "name_prefix" {
  type        = string
  description = "Prefix of the topic names (<project>-<environment>)."
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_-]{0,200}$", var.name_prefix))
    error_message = "name_prefix may contain letters, digits, hyphens and underscores (SNS topic name rules)."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "Customer managed KMS key that encrypts both topics. Null: the AWS-managed key alias/aws/sns (then S3 cannot publish to the trigger topic)."
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be null or a KMS key ARN."
  }
}

variable "dispatcher_function_arn" {
  type        = string
  description = "ARN of the dispatcher Lambda subscribed to the trigger topic."
  nullable    = false

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:function:[A-Za-z0-9_-]+$", var.dispatcher_function_arn))
    error_message = "dispatcher_function_arn must be an unqualified Lambda function ARN."
  }
}

variable "trigger_dlq_arn" {
  type        = string
  description = "ARN of the SQS queue that receives trigger messages SNS could not deliver to the dispatcher (its policy must allow this topic)."
  nullable    = false

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:sqs:[a-z0-9-]+:[0-9]{12}:.+$", var.trigger_dlq_arn))
    error_message = "trigger_dlq_arn must be an SQS queue ARN."
  }
}

variable "s3_publisher_bucket_arns" {
  type        = list(string)
  description = "Buckets allowed to publish object events to the trigger topic (needs kms_key_arn)."
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for arn in var.s3_publisher_bucket_arns : can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9.-]+$", arn))])
    error_message = "s3_publisher_bucket_arns must be S3 bucket ARNs."
  }
}

variable "trigger_publisher_principal_arns" {
  type        = list(string)
  description = "IAM principals (for example a producer role in another account) allowed to publish to the trigger topic. Principals of this account need only IAM permissions."
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for arn in var.trigger_publisher_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(root|role/.+|user/.+)$", arn))])
    error_message = "trigger_publisher_principal_arns must be IAM account, role or user ARNs."
  }
}

variable "notification_emails" {
  type        = list(string)
  description = "Email addresses subscribed to the notifications topic (each must confirm the subscription mail)."
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for email in var.notification_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", email))])
    error_message = "notification_emails must be email addresses."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for the topics."
  default     = {}
  nullable    = false
}
