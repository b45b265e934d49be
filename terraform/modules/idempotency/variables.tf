variable "name" {
  type        = string
  description = "Name of the table."
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{3,255}$", var.name))
    error_message = "name must be 3-255 letters, digits, '_', '-' or '.' (DynamoDB table name rules)."
  }
}

variable "hash_key" {
  type        = string
  description = "Partition key attribute (string). Powertools' DynamoDBPersistenceLayer defaults to id."
  default     = "id"
  nullable    = false

  validation {
    condition     = length(var.hash_key) > 0 && length(var.hash_key) <= 255
    error_message = "hash_key must be 1-255 characters."
  }
}

variable "ttl_attribute_name" {
  type        = string
  description = "Attribute holding each record's expiry (epoch seconds). Powertools defaults to expiration."
  default     = "expiration"
  nullable    = false

  validation {
    condition     = length(var.ttl_attribute_name) > 0 && length(var.ttl_attribute_name) <= 255
    error_message = "ttl_attribute_name must be 1-255 characters."
  }
}

variable "point_in_time_recovery" {
  type        = bool
  description = "Keep continuous backups (35 days) of the table; costs per GB of table size, which stays tiny."
  default     = true
  nullable    = false
}

variable "deletion_protection_enabled" {
  type        = bool
  description = "Refuse to delete the table (terraform destroy fails until this is turned off)."
  default     = false
  nullable    = false
}

variable "kms_key_arn" {
  type        = string
  description = "Customer managed KMS key for the table. Null: the AWS-managed key aws/dynamodb."
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be null or a KMS key ARN."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for the table."
  default     = {}
  nullable    = false
}
