output "trigger_topic_arn" {
  description = "ARN of the trigger topic. Read from the topic policy, so anything using it (the input bucket's notifications) waits until the policy allows it."
  value       = aws_sns_topic_policy.trigger.arn
}

output "trigger_topic_name" {
  description = "Name of the trigger topic."
  value       = aws_sns_topic.trigger.name
}

output "notifications_topic_arn" {
  description = "ARN of the notifications topic."
  value       = aws_sns_topic.notifications.arn
}

output "notifications_topic_name" {
  description = "Name of the notifications topic."
  value       = aws_sns_topic.notifications.name
}

output "dispatcher_subscription_arn" {
  description = "ARN of the dispatcher's subscription to the trigger topic."
  value       = aws_sns_topic_subscription.dispatcher.arn
}

output "email_subscription_arns" {
  description = "Subscription ARNs by email address (pending until confirmed)."
  value       = { for email, subscription in aws_sns_topic_subscription.email : email => subscription.arn }
}
