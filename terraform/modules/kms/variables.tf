variable "name" {
  type        = string
  description = "Name of the key; the alias is alias/<name>."
  nullable    = false

  validation {
    condition     = can(regex("^[a-zA-Z0-9/_-]{1,200}$", var.name)) && !startswith(var.name, "aws/")
    error_message = "name may contain letters, digits, '/', '_' and '-' (at most 200), and must not start with aws/."
  }
}

variable "deletion_window_in_days" {
  type        = number
  description = "Days a scheduled deletion waits before the key is destroyed (7-30)."
  default     = 30
  nullable    = false

  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30 && floor(var.deletion_window_in_days) == var.deletion_window_in_days
    error_message = "deletion_window_in_days must be a whole number from 7 to 30."
  }
}

variable "rotation_period_in_days" {
  type        = number
  description = "Days between automatic rotations of the key material (90-2560)."
  default     = 365
  nullable    = false

  validation {
    condition     = var.rotation_period_in_days >= 90 && var.rotation_period_in_days <= 2560 && floor(var.rotation_period_in_days) == var.rotation_period_in_days
    error_message = "rotation_period_in_days must be a whole number from 90 to 2560."
  }
}

variable "service_principals" {
  type        = list(string)
  description = "AWS service principals that may generate data keys and decrypt with the key when they deliver into encrypted topics and queues (for example s3.amazonaws.com, sns.amazonaws.com, events.amazonaws.com)."
  default     = ["events.amazonaws.com", "s3.amazonaws.com", "sns.amazonaws.com"]
  nullable    = false

  validation {
    condition     = alltrue([for principal in var.service_principals : can(regex("^[a-z0-9.-]+\\.amazonaws\\.com$", principal))])
    error_message = "service_principals must be AWS service principals such as sns.amazonaws.com."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for the key."
  default     = {}
  nullable    = false
}
