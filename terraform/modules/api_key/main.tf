data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  # SSM parameter ARNs drop the name's leading slash: arn:...:parameter/a/b for /a/b.
  parameter_arn = "arn:${data.aws_partition.current.partition}:ssm:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:parameter/${trimprefix(var.name, "/")}"
}

# The API key never passes through Terraform. The parameter is created with a placeholder passed as
# a write-only argument (value_wo, Terraform >= 1.11): Terraform sends it once and keeps no value in
# the plan or the state, and its refreshes do not store the value the parameter holds, so the real
# key (set with scripts/set-api-key.sh or `aws ssm put-parameter --overwrite`) never lands in state.
# value_wo_version never changes, so Terraform never writes the parameter again. With create = false
# an existing SecureString parameter is used by name and not read at all.
resource "aws_ssm_parameter" "this" {
  count = var.create ? 1 : 0

  name             = var.name
  description      = "API key of the face-embedding app (X-API-Key). Set the real value with scripts/set-api-key.sh (aws ssm put-parameter --overwrite); Terraform never reads or writes it after creation."
  type             = "SecureString"
  key_id           = var.kms_key_arn
  value_wo         = var.placeholder_value
  value_wo_version = 1

  tags = merge(var.tags, { Name = var.name })
}
