output "job_queue_arns" {
  description = "Job queue ARNs by compute kind (gpu, cpu)."
  value       = { for kind, queue in aws_batch_job_queue.this : kind => queue.arn }
}

output "job_queue_names" {
  description = "Job queue names by compute kind (gpu, cpu)."
  value       = { for kind, queue in aws_batch_job_queue.this : kind => queue.name }
}

output "job_definition_names" {
  description = "Job definition names (submit by name: the latest active revision runs) by key: script_runner_gpu, script_runner_cpu, face_embedding_gpu, face_embedding_cpu."
  value       = { for key, definition in aws_batch_job_definition.this : key => definition.name }
}

output "job_definition_arns" {
  description = "Job definition ARNs with their current revision, by key."
  value       = { for key, definition in aws_batch_job_definition.this : key => definition.arn }
}

output "job_definition_arn_prefixes" {
  description = "Job definition ARNs without revision, by key (for IAM: append :* for every revision)."
  value       = { for key, definition in aws_batch_job_definition.this : key => definition.arn_prefix }
}

output "compute_environment_arns" {
  description = "Compute environment ARNs by compute kind (gpu, cpu)."
  value       = { for kind, environment in aws_batch_compute_environment.this : kind => environment.arn }
}

output "log_group_name" {
  description = "Log group of the job containers."
  value       = aws_cloudwatch_log_group.this.name
}

output "job_role_arn" {
  description = "IAM role of the job containers."
  value       = aws_iam_role.job.arn
}

output "instance_role_arn" {
  description = "IAM role of the compute instances."
  value       = aws_iam_role.instance.arn
}
