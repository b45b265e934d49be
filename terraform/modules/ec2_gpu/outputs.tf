output "instance_id" {
  description = "ID of the GPU instance."
  value       = aws_instance.this.id
}

output "instance_arn" {
  description = "ARN of the GPU instance (for the start/stop permissions of the Lambdas)."
  value       = aws_instance.this.arn
}

output "private_ip" {
  description = "Private address of the instance (kept across stop/start)."
  value       = aws_instance.this.private_ip
}

output "app_url" {
  description = "URL of the app inside the VPC (reachable from the Lambda security group and app_allowed_cidrs)."
  value       = "http://${aws_instance.this.private_ip}:${var.app_port}"
}

output "ami_id" {
  description = "AMI the instance was created from."
  value       = aws_instance.this.ami
}

output "role_arn" {
  description = "IAM role of the instance."
  value       = aws_iam_role.this.arn
}

output "log_group_name" {
  description = "Log group of the app container."
  value       = aws_cloudwatch_log_group.this.name
}
