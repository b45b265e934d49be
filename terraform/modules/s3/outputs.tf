output "input_bucket_name" {
  description = "Name of the input bucket (images, manifests, and the app's upload path)."
  value       = aws_s3_bucket.this["input"].id
}

output "input_bucket_arn" {
  description = "ARN of the input bucket."
  value       = aws_s3_bucket.this["input"].arn
}

output "output_bucket_name" {
  description = "Name of the output bucket (Batch job results)."
  value       = aws_s3_bucket.this["output"].id
}

output "output_bucket_arn" {
  description = "ARN of the output bucket."
  value       = aws_s3_bucket.this["output"].arn
}

output "models_bucket_name" {
  description = "Name of the models bucket (InsightFace model packs under insightface/)."
  value       = aws_s3_bucket.this["models"].id
}

output "models_bucket_arn" {
  description = "ARN of the models bucket."
  value       = aws_s3_bucket.this["models"].arn
}

output "bucket_names" {
  description = "Bucket names by purpose (input, output, models)."
  value       = { for purpose, bucket in aws_s3_bucket.this : purpose => bucket.id }
}

output "access_logs_bucket_name" {
  description = "Name of the access-log bucket (null when access logging is off)."
  value       = try(aws_s3_bucket.access_logs[0].id, null)
}

output "input_bucket_notification_queue_arn" {
  description = "Queue the input bucket sends its object events to (null without event notifications)."
  value       = one(aws_s3_bucket_notification.input[*].queue[0].queue_arn)
}
