data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  # SSM parameter ARNs drop the name's leading slash: arn:...:parameter/a/b for /a/b.
  parameter_arn = "arn:${data.aws_partition.current.partition}:ssm:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:parameter/${trimprefix(var.name, "/")}"
}

# The API key never passes through Terraform: the parameter is created with a placeholder and
# Terraform ignores its value afterwards, so the real key (set with `aws ssm put-parameter
# --overwrite`) is neither in the plan nor in the state. With create = false an existing
# SecureString parameter is used by name and not read at all.
resource "aws_ssm_parameter" "this" {
  count = var.create ? 1 : 0

  name        = var.name
  description = "API key of the face-embedding app (X-API-Key). Set the real value with aws ssm put-parameter --overwrite; Terraform ignores changes to it."
  type        = "SecureString"
  key_id      = var.kms_key_arn
  value       = var.placeholder_value

  tags = merge(var.tags, { Name = var.name })

  lifecycle {
    ignore_changes = [value]
  }
}
