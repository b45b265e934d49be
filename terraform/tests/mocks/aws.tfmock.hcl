# Values the mocked AWS provider returns where a random string would not do: the provider still
# validates ARNs, ids and policy JSON, and the stack builds names and zones from these.

mock_data "aws_caller_identity" {
  defaults = {
    account_id = "123456789012"
    arn        = "arn:aws:iam::123456789012:user/terraform-test"
  }
}

mock_data "aws_partition" {
  defaults = {
    partition  = "aws"
    dns_suffix = "amazonaws.com"
  }
}

mock_data "aws_region" {
  defaults = {
    name = "us-east-1"
  }
}

mock_data "aws_availability_zones" {
  defaults = {
    names = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1e", "us-east-1f"]
  }
}

# The GPU type is offered in every zone but us-east-1c, so the zone filter has something to drop.
mock_data "aws_ec2_instance_type_offerings" {
  defaults = {
    locations = ["us-east-1a", "us-east-1b", "us-east-1d", "us-east-1e", "us-east-1f"]
  }
}

mock_data "aws_ami" {
  defaults = {
    id = "ami-0123456789abcdef0"
  }
}

mock_data "aws_vpc_endpoint_service" {
  defaults = {
    service_name = "com.amazonaws.us-east-1.mocked"
  }
}

mock_data "aws_iam_policy_document" {
  defaults = {
    json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
  }
}

mock_resource "aws_kms_key" {
  defaults = {
    arn    = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-1111-2222-3333-444455556666"
    key_id = "0a1b2c3d-1111-2222-3333-444455556666"
  }
}

mock_resource "aws_iam_role" {
  defaults = {
    arn = "arn:aws:iam::123456789012:role/mocked"
  }
}

mock_resource "aws_iam_instance_profile" {
  defaults = {
    arn = "arn:aws:iam::123456789012:instance-profile/mocked"
  }
}

mock_resource "aws_subnet" {
  defaults = {
    id = "subnet-0123456789abcdef0"
  }
}

mock_resource "aws_security_group" {
  defaults = {
    id = "sg-0123456789abcdef0"
  }
}

mock_resource "aws_instance" {
  defaults = {
    id         = "i-0123456789abcdef0"
    arn        = "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"
    private_ip = "10.42.0.10"
  }
}

mock_resource "aws_sns_topic" {
  defaults = {
    arn = "arn:aws:sns:us-east-1:123456789012:mocked"
  }
}

mock_resource "aws_cloudwatch_log_group" {
  defaults = {
    arn = "arn:aws:logs:us-east-1:123456789012:log-group:mocked"
  }
}

mock_resource "aws_batch_compute_environment" {
  defaults = {
    arn = "arn:aws:batch:us-east-1:123456789012:compute-environment/mocked"
  }
}

mock_resource "aws_sqs_queue" {
  defaults = {
    arn = "arn:aws:sqs:us-east-1:123456789012:mocked"
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/mocked"
  }
}

mock_resource "aws_lambda_function" {
  defaults = {
    arn = "arn:aws:lambda:us-east-1:123456789012:function:mocked"
  }
}

mock_resource "aws_cloudwatch_event_rule" {
  defaults = {
    arn = "arn:aws:events:us-east-1:123456789012:rule/mocked"
  }
}
