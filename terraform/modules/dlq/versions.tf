terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # Validated against 5.100. Provider 6.0 renamed arguments this stack uses, so stay on 5.x.
      version = ">= 5.60, < 6.0"
    }
  }
}
