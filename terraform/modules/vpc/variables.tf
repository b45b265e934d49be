variable "name" {
  type        = string
  description = "Name prefix for the VPC and everything in it."
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,38}[a-z0-9]$", var.name))
    error_message = "name must be 3-40 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "cidr_block" {
  type        = string
  description = "IPv4 CIDR block of the VPC."
  default     = "10.42.0.0/16"
  nullable    = false

  validation {
    condition     = can(cidrhost(var.cidr_block, 0)) && can(regex("^[0-9.]+/(1[6-9]|2[0-4])$", var.cidr_block)) && try(cidrsubnet(var.cidr_block, 0, 0) == var.cidr_block, false)
    error_message = "cidr_block must be an IPv4 network address from /16 to /24 (10.42.0.0/16, not 10.42.0.1/16)."
  }
}

variable "subnet_newbits" {
  type        = number
  description = "Bits added to the VPC prefix for each subnet (4 turns a /16 into /20 subnets). Subnet numbers 0-7 are public, 8-15 private."
  default     = 4
  nullable    = false

  validation {
    condition     = var.subnet_newbits >= 4 && var.subnet_newbits <= 12 && floor(var.subnet_newbits) == var.subnet_newbits
    error_message = "subnet_newbits must be a whole number from 4 to 12 (at least 16 subnet numbers)."
  }
}

variable "az_count" {
  type        = number
  description = "Number of availability zones to spread the subnets over (ignored when azs is set)."
  default     = 2
  nullable    = false

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 6 && floor(var.az_count) == var.az_count
    error_message = "az_count must be a whole number from 2 to 6."
  }
}

variable "azs" {
  type        = list(string)
  description = "Explicit availability zones (for example [\"us-east-1a\", \"us-east-1b\"]). Empty: the first az_count zones that offer every required_instance_types."
  default     = []
  nullable    = false

  validation {
    condition     = length(var.azs) == 0 || (length(var.azs) >= 2 && length(var.azs) <= 6 && length(distinct(var.azs)) == length(var.azs))
    error_message = "azs must be empty or list 2-6 distinct zones."
  }
}

variable "required_instance_types" {
  type        = list(string)
  description = "Instance types every chosen zone must offer (the GPU instance type), so nothing is placed where it cannot launch."
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for type in var.required_instance_types : can(regex("^[a-z0-9-]+\\.[a-z0-9-]+$", type))])
    error_message = "required_instance_types must be full instance types such as g4dn.xlarge."
  }
}

variable "create_private_subnets" {
  type        = bool
  description = "Create private subnets (no public addresses). The Lambdas in the VPC use them when they exist."
  default     = false
  nullable    = false
}

variable "enable_nat_gateway" {
  type        = bool
  description = "Create a NAT gateway for the private subnets and move the Batch and GPU instances into them (needs create_private_subnets). Costs about 33 USD a month per gateway plus data processing."
  default     = false
  nullable    = false
}

variable "one_nat_gateway_per_az" {
  type        = bool
  description = "One NAT gateway per zone instead of a single shared one (survives a zone outage, multiplies the cost)."
  default     = false
  nullable    = false
}

variable "enable_interface_endpoints" {
  type        = bool
  description = "Create interface endpoints for interface_endpoint_services when there is no NAT gateway, so the Lambdas in the VPC reach those AWS APIs. Each endpoint costs about 7.3 USD a month per zone."
  default     = true
  nullable    = false
}

variable "interface_endpoint_services" {
  type        = list(string)
  description = "Services that get an interface endpoint (ec2 for start/stop/describe, ssm for the API key, sns for notifications). Add ecr.api, ecr.dkr and logs if instances must run without public addresses or NAT."
  default     = ["ec2", "ssm", "sns"]
  nullable    = false

  validation {
    condition     = alltrue([for service in var.interface_endpoint_services : can(regex("^[a-z0-9.-]+$", service))])
    error_message = "interface_endpoint_services must be short service names such as ec2, ssm or ecr.api."
  }
}

variable "interface_endpoint_az_count" {
  type        = number
  description = "Zones each interface endpoint has a network interface in. 1 keeps the cost down (other zones reach it across zones); raise it for zone-outage tolerance."
  default     = 1
  nullable    = false

  validation {
    condition     = var.interface_endpoint_az_count >= 1 && var.interface_endpoint_az_count <= 6 && floor(var.interface_endpoint_az_count) == var.interface_endpoint_az_count
    error_message = "interface_endpoint_az_count must be a whole number from 1 to 6."
  }
}

variable "app_port" {
  type        = number
  description = "TCP port of the face-embedding app on the GPU instance."
  default     = 8000
  nullable    = false

  validation {
    condition     = var.app_port >= 1024 && var.app_port <= 65535 && floor(var.app_port) == var.app_port
    error_message = "app_port must be a whole number from 1024 to 65535."
  }
}

variable "app_allowed_cidrs" {
  type        = list(string)
  description = "IPv4 CIDRs (besides the Lambda security group) allowed to reach the app port on the GPU instance, for example a VPN range. Empty by default; the internet (/0) is refused because the app speaks plain HTTP."
  default     = []
  nullable    = false

  validation {
    condition = alltrue([
      for cidr in var.app_allowed_cidrs :
      can(cidrhost(cidr, 0)) && can(regex("^[0-9.]+/[0-9]+$", cidr)) && !endswith(cidr, "/0") && try(cidrsubnet(cidr, 0, 0) == cidr, false)
    ])
    error_message = "app_allowed_cidrs must be IPv4 network addresses (10.8.0.0/16, not 10.8.0.1/16) and must not be a /0 (the app port is plain HTTP)."
  }
}

variable "extra_egress_tcp_ports" {
  type        = list(number)
  description = "TCP ports, besides 443, that the Batch and GPU instances may open outbound (for example 9200 for a self-managed Elasticsearch)."
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for port in var.extra_egress_tcp_ports : port >= 1 && port <= 65535 && floor(port) == port])
    error_message = "extra_egress_tcp_ports must be whole numbers from 1 to 65535."
  }
}

variable "enable_flow_log" {
  type        = bool
  description = "Send a VPC flow log to CloudWatch Logs."
  default     = true
  nullable    = false
}

variable "flow_log_traffic_type" {
  type        = string
  description = "Traffic the flow log records: ACCEPT, REJECT or ALL."
  default     = "ALL"
  nullable    = false

  validation {
    condition     = contains(["ACCEPT", "REJECT", "ALL"], var.flow_log_traffic_type)
    error_message = "flow_log_traffic_type must be ACCEPT, REJECT or ALL."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the flow log group, in days (a value CloudWatch Logs accepts)."
  default     = 365
  nullable    = false

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653)."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key ARN that encrypts the flow log group (null: CloudWatch Logs' own encryption)."
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be null or a KMS key ARN."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource."
  default     = {}
  nullable    = false
}
