output "aws_region" {
  description = "Region the stack runs in."
  value       = var.aws_region
}

output "ml_input_bucket" {
  description = "Input bucket: images, manifests and scripts for jobs; the app stores uploads under s3_upload_path."
  value       = module.s3.input_bucket_name
}

output "ml_output_bucket" {
  description = "Output bucket: Batch job results."
  value       = module.s3.output_bucket_name
}

output "models_bucket" {
  description = "Models bucket: upload model packs under models_s3_prefix."
  value       = module.s3.models_bucket_name
}

output "models_s3_uri" {
  description = "MODELS_S3_URI the app and the jobs sync model packs from."
  value       = "s3://${module.s3.models_bucket_name}/${var.models_s3_prefix}"
}

output "trigger_events_topic_arn" {
  description = "Topic producers publish work triggers to (the dispatcher is subscribed)."
  value       = module.sns.trigger_topic_arn
}

output "notifications_topic_arn" {
  description = "Topic of job results, instance state and dead-letter alarms (notification_emails are subscribed)."
  value       = module.sns.notifications_topic_arn
}

output "trigger_dlq_url" {
  description = "Dead-letter queue of triggers that failed or were malformed."
  value       = module.trigger_dlq.queue_url
}

output "s3_event_queue_url" {
  description = "Queue the input bucket's upload events wait in for the dispatcher's batching window (null unless enable_s3_event_notifications)."
  value       = one(module.event_queue[*].queue_url)
}

output "s3_event_dlq_url" {
  description = "Dead-letter queue of upload events the dispatcher failed on max_receive_count times (null unless enable_s3_event_notifications)."
  value       = one(module.s3_event_dlq[*].queue_url)
}

output "monitor_dlq_url" {
  description = "Dead-letter queue of job-state and idle-check events that could not be handled."
  value       = module.monitor_dlq.queue_url
}

output "gpu_instance_id" {
  description = "ID of the GPU instance (stopped except while it serves work)."
  value       = module.ec2_gpu.instance_id
}

output "app_url" {
  description = "URL of the app on the GPU instance's private address (from the Lambda security group or app_allowed_cidrs)."
  value       = module.ec2_gpu.app_url
}

output "gpu_job_queue" {
  description = "Name of the GPU job queue."
  value       = module.batch.job_queue_names["gpu"]
}

output "cpu_job_queue" {
  description = "Name of the CPU job queue."
  value       = module.batch.job_queue_names["cpu"]
}

output "job_queue_arns" {
  description = "Job queue ARNs by kind (gpu, cpu)."
  value       = module.batch.job_queue_arns
}

output "job_definitions" {
  description = "Job definition names by key (script_runner_gpu, script_runner_cpu, face_embedding_gpu, face_embedding_cpu)."
  value       = module.batch.job_definition_names
}

output "lambda_function_names" {
  description = "Lambda function names by key (dispatcher, controller, monitor, idle_stopper)."
  value       = module.lambda.function_names
}

output "dispatcher_function_name" {
  description = "Name of the dispatcher Lambda."
  value       = module.lambda.function_names["dispatcher"]
}

output "controller_function_name" {
  description = "Name of the controller Lambda."
  value       = module.lambda.function_names["controller"]
}

output "monitor_function_name" {
  description = "Name of the monitor Lambda."
  value       = module.lambda.function_names["monitor"]
}

output "idle_stopper_function_name" {
  description = "Name of the idle stopper Lambda."
  value       = module.lambda.function_names["idle_stopper"]
}

output "api_key_parameter_name" {
  description = "SecureString parameter holding the API key (its value is never read or output by Terraform)."
  value       = module.api_key.name
}

output "idempotency_table_name" {
  description = "DynamoDB table of the dispatcher's idempotency records."
  value       = module.idempotency.table_name
}

output "kms_key_arn" {
  description = "KMS key that encrypts the stack's data."
  value       = local.kms_key_arn
}

output "vpc_id" {
  description = "ID of the VPC."
  value       = module.vpc.vpc_id
}

output "lambda_log_group_names" {
  description = "Log groups of the functions by key (dispatcher, controller, monitor, idle_stopper), for aws logs tail."
  value       = module.lambda.log_group_names
}

output "container_image" {
  description = "Image the GPU instance and the Batch jobs run (container_image, or its alias ml_container_image)."
  value       = local.container_image
}

output "batch_log_group_name" {
  description = "Log group of the Batch job containers."
  value       = module.batch.log_group_name
}

output "gpu_instance_log_group_name" {
  description = "Log group of the app container on the GPU instance."
  value       = module.ec2_gpu.log_group_name
}

output "availability_zones" {
  description = "Zones the subnets are in; copy them into azs to pin them in a long-lived stack."
  value       = module.vpc.azs
}
