# modules/vpc on its own: the app port is open to the Lambdas and to app_allowed_cidrs only.

mock_provider "aws" {
  source          = "./tests/mocks"
  override_during = plan
}

variables {
  name                    = "face-embed-dev"
  required_instance_types = ["g4dn.xlarge"]
}

run "no_public_ingress_without_a_cidr" {
  command = plan

  module {
    source = "./modules/vpc"
  }

  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.gpu_app_from_cidr) == 0
    error_message = "Without app_allowed_cidrs nothing but the Lambdas may reach the app."
  }

  assert {
    condition     = aws_vpc_security_group_ingress_rule.gpu_app_from_lambda.referenced_security_group_id == aws_security_group.lambda.id && aws_vpc_security_group_ingress_rule.gpu_app_from_lambda.cidr_ipv4 == null
    error_message = "The Lambdas reach the app by security group, never by CIDR."
  }

  assert {
    condition     = aws_vpc_security_group_ingress_rule.endpoints_https.cidr_ipv4 == aws_vpc.this.cidr_block
    error_message = "The interface endpoints accept HTTPS from inside the VPC only."
  }
}

run "ingress_from_an_allowed_cidr" {
  command = plan

  module {
    source = "./modules/vpc"
  }

  variables {
    app_allowed_cidrs = ["10.8.0.0/16"]
  }

  assert {
    condition = (
      length(aws_vpc_security_group_ingress_rule.gpu_app_from_cidr) == 1 &&
      aws_vpc_security_group_ingress_rule.gpu_app_from_cidr["10.8.0.0/16"].from_port == 8000 &&
      aws_vpc_security_group_ingress_rule.gpu_app_from_cidr["10.8.0.0/16"].to_port == 8000
    )
    error_message = "An allowed CIDR opens the app port and nothing else."
  }
}

run "module_refuses_cidrs_with_host_bits" {
  command = plan

  module {
    source = "./modules/vpc"
  }

  variables {
    cidr_block        = "10.42.0.1/16"
    app_allowed_cidrs = ["10.8.0.1/16"]
  }

  expect_failures = [var.cidr_block, var.app_allowed_cidrs]
}
