variable "name_prefix" {
  type        = string
  description = "Prefix of the queue name (<project>-<environment>): <prefix>-s3-events."
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,64}$", var.name_prefix))
    error_message = "name_prefix must be 1-64 letters, digits, hyphens or underscores (SQS queue name rules)."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key that encrypts the queue; its key policy must let s3.amazonaws.com use it. Null: SQS-managed server-side encryption."
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be null or a KMS key ARN."
  }
}

variable "source_bucket_arn" {
  type        = string
  description = "The bucket whose object events the queue receives (the only sender the queue policy admits)."
  nullable    = false

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9.-]+$", var.source_bucket_arn))
    error_message = "source_bucket_arn must be an S3 bucket ARN."
  }
}

variable "dead_letter_queue_arn" {
  type        = string
  description = "Queue an event moves to after max_receive_count receives (the dlq module; same account and region)."
  nullable    = false

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:sqs:[a-z0-9-]+:[0-9]{12}:.+$", var.dead_letter_queue_arn))
    error_message = "dead_letter_queue_arn must be an SQS queue ARN."
  }
}

variable "dead_letter_queue_url" {
  type        = string
  description = "URL of that dead-letter queue: its redrive allow policy admits this queue only."
  nullable    = false
}

variable "function_name" {
  type        = string
  description = "Name or ARN of the function the event source mapping invokes (the dispatcher)."
  nullable    = false
}

variable "function_role_name" {
  type        = string
  description = "Name of that function's execution role: it gets sqs:ReceiveMessage, DeleteMessage and GetQueueAttributes on the queue (and kms:Decrypt on the key)."
  nullable    = false
}

variable "function_timeout_seconds" {
  type        = number
  description = "Timeout of that function; the queue's visibility timeout is 6 times it plus the batching window (AWS guidance)."
  nullable    = false

  validation {
    condition     = var.function_timeout_seconds >= 1 && var.function_timeout_seconds <= 900 && floor(var.function_timeout_seconds) == var.function_timeout_seconds
    error_message = "function_timeout_seconds must be a whole number from 1 to 900."
  }
}

variable "batching_window_seconds" {
  type        = number
  description = "How long Lambda gathers events before it invokes the function (maximum_batching_window_in_seconds): the uploads of this window become one invocation, whose images are one start_and_process."
  default     = 10
  nullable    = false

  validation {
    condition     = var.batching_window_seconds >= 0 && var.batching_window_seconds <= 300 && floor(var.batching_window_seconds) == var.batching_window_seconds
    error_message = "batching_window_seconds must be a whole number from 0 to 300."
  }
}

variable "batch_size" {
  type        = number
  description = "Most events in one invocation (1-10000; above 10 needs a batching window of at least 1 s). The invocation also ends at 6 MB of events."
  default     = 1000
  nullable    = false

  validation {
    condition     = var.batch_size >= 1 && var.batch_size <= 10000 && floor(var.batch_size) == var.batch_size
    error_message = "batch_size must be a whole number from 1 to 10000."
  }
}

variable "max_receive_count" {
  type        = number
  description = "Receives of an event (each failed try of the dispatcher) before it moves to the dead-letter queue."
  default     = 5
  nullable    = false

  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000 && floor(var.max_receive_count) == var.max_receive_count
    error_message = "max_receive_count must be a whole number from 1 to 1000."
  }
}

variable "message_retention_seconds" {
  type        = number
  description = "How long an event waits in the queue at most (60 s to 14 days)."
  default     = 345600
  nullable    = false

  validation {
    condition     = var.message_retention_seconds >= 60 && var.message_retention_seconds <= 1209600 && floor(var.message_retention_seconds) == var.message_retention_seconds
    error_message = "message_retention_seconds must be a whole number from 60 to 1209600."
  }
}

variable "maximum_concurrency" {
  type        = number
  description = "Most concurrent invocations the mapping makes (2-1000). Null: no limit but the function's."
  default     = null

  validation {
    condition     = var.maximum_concurrency == null || try(var.maximum_concurrency >= 2 && var.maximum_concurrency <= 1000 && floor(var.maximum_concurrency) == var.maximum_concurrency, false)
    error_message = "maximum_concurrency must be null or a whole number from 2 to 1000."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for the queue and the mapping."
  default     = {}
  nullable    = false
}
