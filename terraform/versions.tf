terraform {
  required_version = ">= 1.11.0"

  # State in S3, configured at init (README "Terraform state"):
  #   terraform init -backend-config=bucket=<state bucket> -backend-config=region=<region> \
  #     -backend-config=use_lockfile=true        # Terraform >= 1.10: S3-native locking, or
  #     -backend-config=dynamodb_table=<table>   # a DynamoDB lock table (scripts/create-state-backend.sh)
  # Tests and the local stack init with -backend=false or a backend_override.tf.
  backend "s3" {
    key     = "face-embed/terraform.tfstate"
    encrypt = true
  }

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.87.0 is the first release with every argument the stack uses (value_wo of
      # aws_ssm_parameter; job_state_time_limit_action of aws_batch_job_queue came in 5.63.1).
      # terraform test (tests/terraform) plans the stack with 5.100.0. 6.0 renamed arguments used here.
      version = ">= 5.87.0, < 6.0"
    }
  }
}
