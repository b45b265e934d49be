# modules/ec2_gpu on its own: the instance role can do what the app does and nothing more, IMDSv2,
# and the optional Spot market.

mock_provider "aws" {
  source          = "./tests/mocks"
  override_during = plan
}

variables {
  name_prefix             = "face-embed-dev"
  subnet_id               = "subnet-0123456789abcdef0"
  security_group_ids      = ["sg-0123456789abcdef0"]
  user_data_template_path = "../scripts/ec2-user-data.sh.tftpl"
  container_image         = "123456789012.dkr.ecr.us-east-1.amazonaws.com/face-embed:0.1.0"
  input_bucket_name       = "face-embed-dev-ml-input-123456789012"
  input_bucket_arn        = "arn:aws:s3:::face-embed-dev-ml-input-123456789012"
  models_bucket_name      = "face-embed-dev-models-123456789012"
  models_bucket_arn       = "arn:aws:s3:::face-embed-dev-models-123456789012"
  api_key_parameter_name  = "/face-embed/dev/api-key"
  kms_key_arn             = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-1111-2222-3333-444455556666"
}

# Every AWS call of gpu_app (storage/s3.py, secrets.py) against the role: S3 put/get/delete/list
# and head_bucket, the API key from SSM, the stack key for SSE-KMS objects and SecureStrings.
run "instance_role_covers_the_app" {
  command = plan

  module {
    source = "./modules/ec2_gpu"
  }

  variables {
    es_secret_ssm_parameter_name = "/face-embed/dev/es-credentials"
  }

  assert {
    condition = alltrue([
      for action in ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"] :
      anytrue([
        for statement in data.aws_iam_policy_document.this.statement :
        contains(statement.actions, action) && contains(statement.resources, "arn:aws:s3:::face-embed-dev-ml-input-123456789012/upload_with_embed/*") || contains(statement.actions, action) && contains(statement.resources, "arn:aws:s3:::face-embed-dev-ml-input-123456789012/*")
      ])
    ])
    error_message = "The app must be able to put, get and delete under its upload prefix (DELETE /images/{id})."
  }

  assert {
    condition = flatten([
      for statement in data.aws_iam_policy_document.this.statement : statement.resources if contains(statement.actions, "s3:DeleteObject")
    ]) == ["arn:aws:s3:::face-embed-dev-ml-input-123456789012/upload_with_embed/*"]
    error_message = "Deletes must stay inside the upload prefix."
  }

  assert {
    condition = anytrue([
      for statement in data.aws_iam_policy_document.this.statement :
      contains(statement.actions, "s3:ListBucket") && contains(statement.resources, "arn:aws:s3:::face-embed-dev-ml-input-123456789012")
    ])
    error_message = "Listing and head_bucket (/health) need s3:ListBucket on the input bucket."
  }

  assert {
    condition = toset(flatten([
      for statement in data.aws_iam_policy_document.this.statement : statement.resources if contains(statement.actions, "ssm:GetParameter")
      ])) == toset([
      "arn:aws:ssm:us-east-1:123456789012:parameter/face-embed/dev/api-key",
      "arn:aws:ssm:us-east-1:123456789012:parameter/face-embed/dev/es-credentials",
    ])
    error_message = "The instance reads exactly the API key and the Elasticsearch parameters."
  }

  assert {
    condition = anytrue([
      for statement in data.aws_iam_policy_document.this.statement :
      contains(statement.actions, "kms:Decrypt") && contains(statement.actions, "kms:GenerateDataKey") && statement.resources == toset(["arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-1111-2222-3333-444455556666"])
    ])
    error_message = "The app needs the stack key to read SecureStrings and write SSE-KMS objects."
  }

  assert {
    condition     = aws_instance.this.metadata_options[0].http_tokens == "required"
    error_message = "IMDSv2 only."
  }

  assert {
    condition     = length(aws_instance.this.instance_market_options) == 0
    error_message = "On-Demand is the default."
  }
}

run "spot_market" {
  command = plan

  module {
    source = "./modules/ec2_gpu"
  }

  variables {
    use_spot_instance = true
    spot_max_price    = "0.30"
  }

  assert {
    condition     = aws_instance.this.instance_market_options[0].market_type == "spot"
    error_message = "use_spot_instance must request Spot."
  }

  assert {
    condition     = aws_instance.this.instance_market_options[0].spot_options[0].spot_instance_type == "persistent" && aws_instance.this.instance_market_options[0].spot_options[0].instance_interruption_behavior == "stop"
    error_message = "The controller stops and starts the instance: the request must be persistent and stop on interruption."
  }

  assert {
    condition     = aws_instance.this.instance_market_options[0].spot_options[0].max_price == "0.30"
    error_message = "spot_max_price must cap the price."
  }
}

run "elasticsearch_credentials_in_secrets_manager" {
  command = plan

  module {
    source = "./modules/ec2_gpu"
  }

  variables {
    es_secret_ssm_parameter_name = "arn:aws:secretsmanager:us-east-1:123456789012:secret:es-AbCdEf"
  }

  assert {
    condition = flatten([
      for statement in data.aws_iam_policy_document.this.statement : statement.resources if contains(statement.actions, "secretsmanager:GetSecretValue")
    ]) == ["arn:aws:secretsmanager:us-east-1:123456789012:secret:es-AbCdEf"]
    error_message = "A Secrets Manager ARN must be readable as given."
  }

  assert {
    condition = flatten([
      for statement in data.aws_iam_policy_document.this.statement : statement.resources if contains(statement.actions, "ssm:GetParameter")
    ]) == ["arn:aws:ssm:us-east-1:123456789012:parameter/face-embed/dev/api-key"]
    error_message = "Only the API key is read from SSM then."
  }
}
