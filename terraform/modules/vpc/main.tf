data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

# Consulted only when var.azs is empty. No state filter: a zone that is briefly impaired must not
# drop out of the list and move the subnets.
data "aws_availability_zones" "available" {
  # checkov:skip=CKV_AWS_394:Only used when azs is empty, to pick the first az_count zones (by name) that offer the GPU type; the chosen zones are an output and the README tells long-lived stacks to pin them with azs.
  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}

# Zones that offer every instance type the stack must launch (the GPU instance type is not in
# every zone), so the instance and the Batch environments never land in a zone that cannot run them.
data "aws_ec2_instance_type_offerings" "required" {
  for_each = toset(var.required_instance_types)

  location_type = "availability-zone"

  filter {
    name   = "instance-type"
    values = [each.value]
  }
}

data "aws_vpc_endpoint_service" "s3" {
  service      = "s3"
  service_type = "Gateway"
}

data "aws_vpc_endpoint_service" "interface" {
  for_each = local.create_interface_endpoints ? toset(var.interface_endpoint_services) : toset([])

  service      = each.value
  service_type = "Interface"
}

locals {
  offered_azs = [
    for az in data.aws_availability_zones.available.names : az
    if alltrue([for type in var.required_instance_types : contains(data.aws_ec2_instance_type_offerings.required[type].locations, az)])
  ]
  azs = length(var.azs) > 0 ? var.azs : slice(local.offered_azs, 0, min(var.az_count, length(local.offered_azs)))

  # Subnet number i for public subnets and i + 8 for private ones: adding a zone later never moves
  # an existing subnet.
  public_subnets  = { for index, az in local.azs : az => cidrsubnet(var.cidr_block, var.subnet_newbits, index) }
  private_subnets = var.create_private_subnets ? { for index, az in local.azs : az => cidrsubnet(var.cidr_block, var.subnet_newbits, index + 8) } : {}

  nat_azs = var.enable_nat_gateway ? (var.one_nat_gateway_per_az ? local.azs : [local.azs[0]]) : []

  # Without a NAT gateway, instances need a public address for egress (ECR, ECS, S3 over the
  # gateway endpoint works without one), so they run in the public subnets; with NAT, in private ones.
  instance_subnet_ids = var.enable_nat_gateway ? [for az in local.azs : aws_subnet.private[az].id] : [for az in local.azs : aws_subnet.public[az].id]
  # Lambda ENIs never get a public address: private subnets when there are any.
  lambda_subnet_ids = var.create_private_subnets ? [for az in local.azs : aws_subnet.private[az].id] : [for az in local.azs : aws_subnet.public[az].id]

  create_interface_endpoints = var.enable_interface_endpoints && !var.enable_nat_gateway
  endpoint_subnet_ids        = slice(local.lambda_subnet_ids, 0, min(var.interface_endpoint_az_count, length(local.lambda_subnet_ids)))

  egress_tcp_ports = toset([for port in concat([443], var.extra_egress_tcp_ports) : tostring(port)])
}

################################################################################
# VPC, subnets, routing
################################################################################

resource "aws_vpc" "this" {
  cidr_block           = var.cidr_block
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = merge(var.tags, { Name = var.name })

  lifecycle {
    precondition {
      condition     = length(local.azs) >= 2
      error_message = "Fewer than two availability zones offer all of ${join(", ", var.required_instance_types)} in this region; set azs explicitly or choose other instance types."
    }

    precondition {
      condition     = !var.enable_nat_gateway || var.create_private_subnets
      error_message = "enable_nat_gateway needs create_private_subnets = true (the NAT gateway serves the private subnets)."
    }
  }
}

# The default security group allows all traffic between its members: strip every rule so that
# nothing can use it by accident.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id

  tags = merge(var.tags, { Name = "${var.name}-default-deny-all" })
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id

  tags = merge(var.tags, { Name = var.name })
}

resource "aws_subnet" "public" {
  for_each = local.public_subnets

  vpc_id                  = aws_vpc.this.id
  availability_zone       = each.key
  cidr_block              = each.value
  map_public_ip_on_launch = !var.enable_nat_gateway

  tags = merge(var.tags, { Name = "${var.name}-public-${each.key}", Tier = "public" })
}

resource "aws_subnet" "private" {
  for_each = local.private_subnets

  vpc_id            = aws_vpc.this.id
  availability_zone = each.key
  cidr_block        = each.value

  tags = merge(var.tags, { Name = "${var.name}-private-${each.key}", Tier = "private" })
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id

  tags = merge(var.tags, { Name = "${var.name}-public" })
}

resource "aws_route" "public_internet" {
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "public" {
  for_each = aws_subnet.public

  subnet_id      = each.value.id
  route_table_id = aws_route_table.public.id
}

resource "aws_eip" "nat" {
  for_each = toset(local.nat_azs)

  domain = "vpc"

  tags = merge(var.tags, { Name = "${var.name}-nat-${each.key}" })

  depends_on = [aws_internet_gateway.this]
}

resource "aws_nat_gateway" "this" {
  for_each = toset(local.nat_azs)

  allocation_id = aws_eip.nat[each.key].id
  subnet_id     = aws_subnet.public[each.key].id

  tags = merge(var.tags, { Name = "${var.name}-${each.key}" })

  depends_on = [aws_internet_gateway.this]
}

resource "aws_route_table" "private" {
  for_each = aws_subnet.private

  vpc_id = aws_vpc.this.id

  tags = merge(var.tags, { Name = "${var.name}-private-${each.key}" })
}

resource "aws_route" "private_nat" {
  for_each = var.enable_nat_gateway ? aws_route_table.private : {}

  route_table_id         = each.value.id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[var.one_nat_gateway_per_az ? each.key : local.nat_azs[0]].id
}

resource "aws_route_table_association" "private" {
  for_each = aws_subnet.private

  subnet_id      = each.value.id
  route_table_id = aws_route_table.private[each.key].id
}

################################################################################
# VPC endpoints
################################################################################

# Free: S3 traffic (models, inputs, outputs, ECR image layers) stays off the internet gateway and NAT.
resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.this.id
  service_name      = data.aws_vpc_endpoint_service.s3.service_name
  vpc_endpoint_type = "Gateway"
  route_table_ids   = concat([aws_route_table.public.id], [for table in aws_route_table.private : table.id])

  tags = merge(var.tags, { Name = "${var.name}-s3" })
}

# The controller and idle stopper run in the VPC (they call the app on its private address) and
# also call EC2, SSM and SNS. Without NAT those APIs are reachable only through interface endpoints.
resource "aws_vpc_endpoint" "interface" {
  for_each = data.aws_vpc_endpoint_service.interface

  vpc_id              = aws_vpc.this.id
  service_name        = each.value.service_name
  vpc_endpoint_type   = "Interface"
  private_dns_enabled = true
  subnet_ids          = local.endpoint_subnet_ids
  security_group_ids  = [aws_security_group.endpoints.id]

  tags = merge(var.tags, { Name = "${var.name}-${each.key}" })
}

################################################################################
# Security groups
################################################################################

resource "aws_security_group" "endpoints" {
  name        = "${var.name}-endpoints"
  description = "Interface VPC endpoints: HTTPS from inside the VPC"
  vpc_id      = aws_vpc.this.id

  tags = merge(var.tags, { Name = "${var.name}-endpoints" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_https" {
  security_group_id = aws_security_group.endpoints.id
  description       = "HTTPS to the AWS APIs from the VPC"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = aws_vpc.this.cidr_block
}

resource "aws_security_group" "batch" {
  # checkov:skip=CKV2_AWS_5:Attached by the batch module's compute environments through this module's outputs; checkov's graph does not follow module outputs.
  name        = "${var.name}-batch"
  description = "Batch compute instances: egress only, no ingress"
  vpc_id      = aws_vpc.this.id

  tags = merge(var.tags, { Name = "${var.name}-batch" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_egress_rule" "batch" {
  for_each = local.egress_tcp_ports

  security_group_id = aws_security_group.batch.id
  description       = "TCP ${each.value} out (AWS APIs, ECR, S3${each.value == "443" ? "" : ", extra port"})"
  ip_protocol       = "tcp"
  from_port         = tonumber(each.value)
  to_port           = tonumber(each.value)
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_security_group" "gpu_instance" {
  # checkov:skip=CKV2_AWS_5:Attached by the ec2_gpu module's instance through this module's outputs; checkov's graph does not follow module outputs.
  name        = "${var.name}-gpu-instance"
  description = "GPU instance: app port from the Lambda security group and allowed CIDRs only"
  vpc_id      = aws_vpc.this.id

  tags = merge(var.tags, { Name = "${var.name}-gpu-instance" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "gpu_app_from_lambda" {
  security_group_id            = aws_security_group.gpu_instance.id
  description                  = "App port from the controller and idle stopper Lambdas"
  ip_protocol                  = "tcp"
  from_port                    = var.app_port
  to_port                      = var.app_port
  referenced_security_group_id = aws_security_group.lambda.id
}

resource "aws_vpc_security_group_ingress_rule" "gpu_app_from_cidr" {
  for_each = toset(var.app_allowed_cidrs)

  security_group_id = aws_security_group.gpu_instance.id
  description       = "App port from an allowed CIDR (app_allowed_cidrs)"
  ip_protocol       = "tcp"
  from_port         = var.app_port
  to_port           = var.app_port
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "gpu_instance" {
  for_each = local.egress_tcp_ports

  security_group_id = aws_security_group.gpu_instance.id
  description       = "TCP ${each.value} out (AWS APIs, ECR, S3, package repositories${each.value == "443" ? "" : ", extra port"})"
  ip_protocol       = "tcp"
  from_port         = tonumber(each.value)
  to_port           = tonumber(each.value)
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_security_group" "lambda" {
  # checkov:skip=CKV2_AWS_5:Attached by the lambda module's controller and idle stopper through this module's outputs; checkov's graph does not follow module outputs.
  name        = "${var.name}-lambda"
  description = "Lambdas in the VPC: HTTPS to AWS APIs and the app port on the GPU instance"
  vpc_id      = aws_vpc.this.id

  tags = merge(var.tags, { Name = "${var.name}-lambda" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_egress_rule" "lambda_https" {
  security_group_id = aws_security_group.lambda.id
  description       = "HTTPS to AWS APIs (interface endpoints or NAT)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "lambda_to_gpu_app" {
  security_group_id            = aws_security_group.lambda.id
  description                  = "App port on the GPU instance"
  ip_protocol                  = "tcp"
  from_port                    = var.app_port
  to_port                      = var.app_port
  referenced_security_group_id = aws_security_group.gpu_instance.id
}

################################################################################
# Flow log
################################################################################

resource "aws_cloudwatch_log_group" "flow_log" {
  count = var.enable_flow_log ? 1 : 0

  name              = "/aws/vpc/flow-log/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn

  tags = var.tags
}

data "aws_iam_policy_document" "flow_log_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["vpc-flow-logs.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

data "aws_iam_policy_document" "flow_log" {
  count = var.enable_flow_log ? 1 : 0

  statement {
    sid       = "WriteOwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.flow_log[0].arn}:*"]
  }

  statement {
    sid       = "FindOwnLogGroup"
    actions   = ["logs:DescribeLogGroups"]
    resources = ["arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:log-group:*"]
  }
}

resource "aws_iam_role" "flow_log" {
  count = var.enable_flow_log ? 1 : 0

  name               = "${var.name}-vpc-flow-log"
  assume_role_policy = data.aws_iam_policy_document.flow_log_assume.json

  tags = var.tags
}

resource "aws_iam_role_policy" "flow_log" {
  count = var.enable_flow_log ? 1 : 0

  name   = "write-flow-log"
  role   = aws_iam_role.flow_log[0].id
  policy = data.aws_iam_policy_document.flow_log[0].json
}

resource "aws_flow_log" "this" {
  count = var.enable_flow_log ? 1 : 0

  vpc_id                   = aws_vpc.this.id
  traffic_type             = var.flow_log_traffic_type
  log_destination_type     = "cloud-watch-logs"
  log_destination          = aws_cloudwatch_log_group.flow_log[0].arn
  iam_role_arn             = aws_iam_role.flow_log[0].arn
  max_aggregation_interval = 600

  tags = merge(var.tags, { Name = var.name })
}
