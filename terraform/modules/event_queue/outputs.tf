output "queue_arn" {
  description = "ARN of the S3 event queue. Read after the queue policy, so the bucket notification that uses it waits until S3 may send."
  value       = aws_sqs_queue.events.arn

  depends_on = [aws_sqs_queue_policy.events]
}

output "queue_url" {
  description = "URL of the S3 event queue."
  value       = aws_sqs_queue.events.id
}

output "queue_name" {
  description = "Name of the S3 event queue."
  value       = aws_sqs_queue.events.name
}

output "event_source_mapping_uuid" {
  description = "UUID of the event source mapping (aws lambda get-event-source-mapping --uuid)."
  value       = aws_lambda_event_source_mapping.events.uuid
}

output "event_source_mapping_batching_window_seconds" {
  description = "Batching window of the event source mapping in seconds."
  value       = aws_lambda_event_source_mapping.events.maximum_batching_window_in_seconds
}

output "event_source_mapping_batch_size" {
  description = "Batch size of the event source mapping."
  value       = aws_lambda_event_source_mapping.events.batch_size
}

output "event_source_mapping_maximum_concurrency" {
  description = "Most concurrent invocations of the event source mapping (null: only the function's limit)."
  value       = try(aws_lambda_event_source_mapping.events.scaling_config[0].maximum_concurrency, null)
}
