output "name" {
  description = "Name of the API key parameter (the app and the Lambdas read it by this name)."
  value       = var.create ? aws_ssm_parameter.this[0].name : var.name
}

output "arn" {
  description = "ARN of the API key parameter, for IAM policies."
  value       = var.create ? aws_ssm_parameter.this[0].arn : local.parameter_arn
}
