variable "name" {
  type        = string
  description = "Name of the SecureString parameter holding the API key, for example /face-embed/dev/api-key."
  nullable    = false

  validation {
    condition     = can(regex("^/?[A-Za-z0-9_.\\-/]{1,1000}$", var.name)) && !can(regex("^/?(aws|ssm)", lower(var.name)))
    error_message = "name must be a valid SSM parameter name (letters, digits, _.-/) and must not start with aws or ssm."
  }
}

variable "create" {
  type        = bool
  description = "Create the parameter (with placeholder_value, which Terraform never updates afterwards). False: the parameter already exists and is only referenced by name."
  default     = true
  nullable    = false
}

variable "placeholder_value" {
  type        = string
  description = "Initial value of a created parameter. Not a secret: replace it with aws ssm put-parameter --overwrite before the app is used."
  default     = "PLACEHOLDER-replace-with-aws-ssm-put-parameter"
  nullable    = false

  validation {
    condition     = length(var.placeholder_value) > 0
    error_message = "placeholder_value must not be empty (SSM rejects empty values)."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key that encrypts a created parameter. Null: the AWS-managed key alias/aws/ssm."
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be null or a KMS key ARN."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for a created parameter."
  default     = {}
  nullable    = false
}
