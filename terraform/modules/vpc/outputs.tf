output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr_block" {
  description = "CIDR block of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "azs" {
  description = "Availability zones the subnets are in."
  value       = local.azs
}

output "public_subnet_ids" {
  description = "IDs of the public subnets, one per zone."
  value       = [for az in local.azs : aws_subnet.public[az].id]
}

output "private_subnet_ids" {
  description = "IDs of the private subnets (empty unless create_private_subnets)."
  value       = [for az in local.azs : aws_subnet.private[az].id if var.create_private_subnets]
}

output "instance_subnet_ids" {
  description = "Subnets for the Batch and GPU instances: private with a NAT gateway, public otherwise."
  value       = local.instance_subnet_ids
}

output "instances_have_public_ip" {
  description = "Whether instances need a public address for egress (true when there is no NAT gateway)."
  value       = !var.enable_nat_gateway
}

output "lambda_subnet_ids" {
  description = "Subnets for the Lambdas that run in the VPC: private when they exist, public otherwise."
  value       = local.lambda_subnet_ids
}

output "batch_security_group_id" {
  description = "Security group of the Batch compute instances (egress only)."
  value       = aws_security_group.batch.id
}

output "gpu_instance_security_group_id" {
  description = "Security group of the GPU instance (app port from the Lambda group and app_allowed_cidrs)."
  value       = aws_security_group.gpu_instance.id
}

output "lambda_security_group_id" {
  description = "Security group of the Lambdas in the VPC."
  value       = aws_security_group.lambda.id
}

output "endpoints_security_group_id" {
  description = "Security group of the interface endpoints."
  value       = aws_security_group.endpoints.id
}

output "s3_endpoint_id" {
  description = "ID of the S3 gateway endpoint."
  value       = aws_vpc_endpoint.s3.id
}

output "interface_endpoint_ids" {
  description = "IDs of the interface endpoints by service (empty with a NAT gateway or when disabled)."
  value       = { for service, endpoint in aws_vpc_endpoint.interface : service => endpoint.id }
}

output "nat_gateway_public_ips" {
  description = "Public addresses of the NAT gateways (empty without NAT)."
  value       = [for eip in aws_eip.nat : eip.public_ip]
}

output "flow_log_group_name" {
  description = "Log group of the VPC flow log (null when disabled)."
  value       = try(aws_cloudwatch_log_group.flow_log[0].name, null)
}
