terraform {
  required_version = ">= 1.5.0"

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
