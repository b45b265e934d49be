output "function_names" {
  description = "Function names by key (dispatcher, controller, monitor, idle_stopper)."
  value       = { for key, function in aws_lambda_function.this : key => function.function_name }
}

output "function_arns" {
  description = "Function ARNs by key."
  value       = { for key, function in aws_lambda_function.this : key => function.arn }
}

output "dispatcher_function_arn" {
  description = "ARN of the dispatcher (subscribed to the trigger topic)."
  value       = aws_lambda_function.this["dispatcher"].arn
}

output "role_arns" {
  description = "Execution role ARNs by function key."
  value       = { for key, role in aws_iam_role.this : key => role.arn }
}

output "log_group_names" {
  description = "Log group names by function key."
  value       = { for key, group in aws_cloudwatch_log_group.this : key => group.name }
}

output "batch_job_state_rule_arn" {
  description = "ARN of the EventBridge rule sending Batch Job State Change events to the monitor (may dead-letter into the monitor DLQ)."
  value       = aws_cloudwatch_event_rule.batch_job_state.arn
}

output "idle_check_rule_arn" {
  description = "ARN of the EventBridge schedule running the idle stopper (may dead-letter into the monitor DLQ)."
  value       = aws_cloudwatch_event_rule.idle_check.arn
}

output "dispatcher_role_name" {
  description = "Name of the dispatcher's execution role (the S3 event queue's consume policy is attached to it)."
  value       = aws_iam_role.this["dispatcher"].name
}

output "dispatcher_timeout_seconds" {
  description = "Timeout of the dispatcher in seconds (the S3 event queue's visibility timeout is derived from it)."
  value       = aws_lambda_function.this["dispatcher"].timeout
}
