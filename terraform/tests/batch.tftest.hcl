# modules/batch on its own: queues route to the right compute environments, On-Demand and Spot,
# the CPU image, and what the job role (which runs users' scripts) may and may not do.

mock_provider "aws" {
  source          = "./tests/mocks"
  override_during = plan
}

variables {
  name_prefix        = "face-embed-dev"
  subnet_ids         = ["subnet-0123456789abcdef0"]
  security_group_ids = ["sg-0123456789abcdef0"]
  container_image    = "123456789012.dkr.ecr.us-east-1.amazonaws.com/face-embed:0.1.0"
  input_bucket_name  = "face-embed-dev-ml-input-123456789012"
  input_bucket_arn   = "arn:aws:s3:::face-embed-dev-ml-input-123456789012"
  output_bucket_name = "face-embed-dev-ml-output-123456789012"
  output_bucket_arn  = "arn:aws:s3:::face-embed-dev-ml-output-123456789012"
  models_bucket_name = "face-embed-dev-models-123456789012"
  models_bucket_arn  = "arn:aws:s3:::face-embed-dev-models-123456789012"
  kms_key_arn        = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-1111-2222-3333-444455556666"
}

run "queues_route_to_their_compute_environments" {
  command = plan

  module {
    source = "./modules/batch"
  }

  override_resource {
    target          = aws_batch_compute_environment.this["gpu"]
    values          = { arn = "arn:aws:batch:us-east-1:123456789012:compute-environment/face-embed-dev-gpu-1" }
    override_during = plan
  }

  override_resource {
    target          = aws_batch_compute_environment.this["cpu"]
    values          = { arn = "arn:aws:batch:us-east-1:123456789012:compute-environment/face-embed-dev-cpu-1" }
    override_during = plan
  }

  assert {
    condition = alltrue([
      for kind in ["gpu", "cpu"] :
      aws_batch_job_queue.this[kind].compute_environment_order[0].compute_environment == aws_batch_compute_environment.this[kind].arn
    ])
    error_message = "Each queue must send its jobs to the compute environment of its own kind."
  }

  assert {
    condition     = aws_batch_compute_environment.this["gpu"].arn != aws_batch_compute_environment.this["cpu"].arn
    error_message = "The test needs two distinct environments."
  }

  assert {
    condition     = toset(aws_batch_compute_environment.this["gpu"].compute_resources[0].instance_type) == toset(["g4dn", "g5"])
    error_message = "The GPU environment must launch GPU families only."
  }

  assert {
    condition     = aws_batch_compute_environment.this["gpu"].compute_resources[0].ec2_configuration[0].image_type == "ECS_AL2023_NVIDIA"
    error_message = "The GPU environment needs the NVIDIA ECS AMI."
  }

  assert {
    condition     = toset(aws_batch_compute_environment.this["cpu"].compute_resources[0].instance_type) == toset(["m5", "c5"])
    error_message = "The CPU environment must launch CPU families only."
  }

  assert {
    condition     = alltrue([for kind in ["gpu", "cpu"] : aws_batch_compute_environment.this[kind].compute_resources[0].min_vcpus == 0])
    error_message = "Both environments must scale to zero."
  }

  assert {
    condition = alltrue([
      for key, definition in aws_batch_job_definition.this :
      endswith(key, "_gpu") == contains(jsondecode(definition.container_properties).resourceRequirements[*].type, "GPU")
    ])
    error_message = "GPU job definitions, and only they, must request a GPU."
  }

  assert {
    condition     = aws_batch_compute_environment.this["gpu"].compute_resources[0].type == "SPOT" && aws_batch_compute_environment.this["gpu"].compute_resources[0].allocation_strategy == "SPOT_CAPACITY_OPTIMIZED"
    error_message = "Spot is the default for GPU jobs."
  }

  assert {
    condition = alltrue([
      for kind in ["gpu", "cpu"] : alltrue([
        for limit in aws_batch_job_queue.this[kind].job_state_time_limit_action :
        limit.state == "RUNNABLE" && limit.action == "CANCEL" && limit.max_time_seconds == 1800
      ]) && length(aws_batch_job_queue.this[kind].job_state_time_limit_action) == 3
    ])
    error_message = "Jobs stuck RUNNABLE must be cancelled after runnable_timeout_seconds, for each reason."
  }
}

run "on_demand_and_cpu_image" {
  command = plan

  module {
    source = "./modules/batch"
  }

  variables {
    gpu_use_spot_instances = false
    cpu_use_spot_instances = false
    cpu_container_image    = "123456789012.dkr.ecr.us-east-1.amazonaws.com/face-embed-cpu:0.1.0"
  }

  assert {
    condition = alltrue([
      for kind in ["gpu", "cpu"] :
      aws_batch_compute_environment.this[kind].compute_resources[0].type == "EC2" && aws_batch_compute_environment.this[kind].compute_resources[0].allocation_strategy == "BEST_FIT_PROGRESSIVE" && aws_batch_compute_environment.this[kind].compute_resources[0].bid_percentage == null
    ])
    error_message = "On-Demand environments must use EC2 with BEST_FIT_PROGRESSIVE and no bid."
  }

  assert {
    condition = alltrue([
      for key in ["script_runner_cpu", "face_embedding_cpu"] :
      jsondecode(aws_batch_job_definition.this[key].container_properties).image == "123456789012.dkr.ecr.us-east-1.amazonaws.com/face-embed-cpu:0.1.0"
    ])
    error_message = "CPU job definitions must run cpu_container_image."
  }

  assert {
    condition = alltrue([
      for key in ["script_runner_gpu", "face_embedding_gpu"] :
      jsondecode(aws_batch_job_definition.this[key].container_properties).image == "123456789012.dkr.ecr.us-east-1.amazonaws.com/face-embed:0.1.0"
    ])
    error_message = "GPU job definitions must run container_image."
  }
}

# Jobs run users' uploaded scripts: they must not get the app's API key, nor delete anything.
run "job_role_never_reads_the_api_key" {
  command = plan

  module {
    source = "./modules/batch"
  }

  variables {
    es_secret_ssm_parameter_name = "/face-embed/dev/es-credentials"
  }

  assert {
    condition = flatten([
      for statement in data.aws_iam_policy_document.job.statement : statement.resources if contains(statement.actions, "ssm:GetParameter")
    ]) == ["arn:aws:ssm:us-east-1:123456789012:parameter/face-embed/dev/es-credentials"]
    error_message = "The job role may read the Elasticsearch parameter and no other: ${jsonencode(data.aws_iam_policy_document.job.statement)}"
  }

  assert {
    condition = alltrue([
      for definition in aws_batch_job_definition.this :
      !contains(jsondecode(definition.container_properties).environment[*].name, "API_KEY_SSM_PARAMETER")
    ])
    error_message = "Job containers must not be told where the API key is."
  }

  assert {
    condition     = !contains(flatten(data.aws_iam_policy_document.job.statement[*].actions), "s3:DeleteObject")
    error_message = "Jobs must not delete objects."
  }
}

run "elasticsearch_credentials_in_secrets_manager" {
  command = plan

  module {
    source = "./modules/batch"
  }

  variables {
    es_secret_ssm_parameter_name = "secretsmanager:face-embed/es"
  }

  assert {
    condition = flatten([
      for statement in data.aws_iam_policy_document.job.statement : statement.resources if contains(statement.actions, "secretsmanager:GetSecretValue")
    ]) == ["arn:aws:secretsmanager:us-east-1:123456789012:secret:face-embed/es-??????"]
    error_message = "A secretsmanager: name must grant GetSecretValue on that secret only."
  }

  assert {
    condition     = !contains(flatten(data.aws_iam_policy_document.job.statement[*].actions), "ssm:GetParameter")
    error_message = "With the credentials in Secrets Manager the job role reads no parameter."
  }
}
