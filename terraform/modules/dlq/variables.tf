variable "name" {
  type        = string
  description = "Name of the queue."
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,80}$", var.name))
    error_message = "name must be 1-80 letters, digits, hyphens or underscores (SQS queue name rules, not FIFO)."
  }
}

variable "message_retention_seconds" {
  type        = number
  description = "How long a dead-lettered message is kept (60 s to 14 days)."
  default     = 1209600
  nullable    = false

  validation {
    condition     = var.message_retention_seconds >= 60 && var.message_retention_seconds <= 1209600 && floor(var.message_retention_seconds) == var.message_retention_seconds
    error_message = "message_retention_seconds must be a whole number from 60 to 1209600."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key that encrypts the queue. Null: SQS-managed server-side encryption."
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be null or a KMS key ARN."
  }
}

variable "allowed_senders" {
  type = list(object({
    service    = string
    source_arn = string
  }))
  description = "AWS service principals allowed to send to the queue, each only on behalf of one source ARN (for example sns.amazonaws.com for a topic's subscription redrive, events.amazonaws.com for a rule's target DLQ)."
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for sender in var.allowed_senders : can(regex("^[a-z0-9.-]+\\.amazonaws\\.com$", sender.service))])
    error_message = "allowed_senders[*].service must be an AWS service principal such as sns.amazonaws.com."
  }
}

variable "alarm_actions" {
  type        = list(string)
  description = "ARNs (for example an SNS topic) notified when the queue holds messages. Empty: no alarm."
  default     = []
  nullable    = false
}

variable "tags" {
  type        = map(string)
  description = "Tags for the queue and its alarm."
  default     = {}
  nullable    = false
}
