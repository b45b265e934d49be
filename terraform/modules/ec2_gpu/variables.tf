variable "name_prefix" {
  type        = string
  description = "Prefix of every name (<project>-<environment>)."
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,38}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-40 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "instance_type" {
  type        = string
  description = "GPU instance type (x86_64 with an NVIDIA GPU)."
  default     = "g4dn.xlarge"
  nullable    = false

  validation {
    condition     = can(regex("^(g4dn|g5|g6|g6e|gr6|p3|p3dn|p4d|p4de|p5|p5e|p5en)\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type must be an x86_64 NVIDIA GPU type such as g4dn.xlarge, g5.xlarge or g6.xlarge."
  }
}

variable "ami_id" {
  type        = string
  description = "AMI of the instance. Null: the latest AMI matching ami_name_filter (the Deep Learning Base GPU AMI). Later AMI releases do not replace the instance (ignore_changes)."
  default     = null

  validation {
    condition     = var.ami_id == null || can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id must be null or an AMI id."
  }
}

variable "ami_name_filter" {
  type        = string
  description = "Name pattern of the Amazon-owned default AMI (used when ami_id is null)."
  default     = "Deep Learning Base OSS Nvidia Driver GPU AMI (Amazon Linux 2023) *"
  nullable    = false
}

variable "subnet_id" {
  type        = string
  description = "Subnet of the instance (its private address, and so the app URL, is kept across stop/start)."
  nullable    = false

  validation {
    condition     = startswith(var.subnet_id, "subnet-")
    error_message = "subnet_id must be a subnet id."
  }
}

variable "security_group_ids" {
  type        = list(string)
  description = "Security groups of the instance (app port from the Lambda group and allowed CIDRs only)."
  nullable    = false

  validation {
    condition     = length(var.security_group_ids) > 0
    error_message = "security_group_ids must list at least one security group."
  }
}

variable "associate_public_ip_address" {
  type        = bool
  description = "Give the instance a public address (needed for egress when its subnet has no NAT gateway). It changes on every start; the app URL uses the private address."
  default     = false
  nullable    = false
}

variable "root_volume_size" {
  type        = number
  description = "Encrypted gp3 root volume in GiB (the AMI, the CUDA image and the model packs live there)."
  default     = 100
  nullable    = false

  validation {
    condition     = var.root_volume_size >= 75 && var.root_volume_size <= 16384 && floor(var.root_volume_size) == var.root_volume_size
    error_message = "root_volume_size must be a whole number from 75 (the Deep Learning AMI's own size) to 16384."
  }
}

variable "user_data_template_path" {
  type        = string
  description = "Path of the user data template (scripts/ec2-user-data.sh.tftpl), rendered with templatefile()."
  nullable    = false
}

variable "stop_after_first_boot" {
  type        = bool
  description = "Stop the instance once the first boot has installed and started the app (it is created running, provisions itself, then stops). The controller Lambda starts it on demand."
  default     = true
  nullable    = false
}

variable "health_timeout_seconds" {
  type        = number
  description = "How long the first boot waits for the app's /ready before giving up (model download included)."
  default     = 900
  nullable    = false

  validation {
    condition     = var.health_timeout_seconds >= 60 && var.health_timeout_seconds <= 3600 && floor(var.health_timeout_seconds) == var.health_timeout_seconds
    error_message = "health_timeout_seconds must be a whole number from 60 to 3600."
  }
}

variable "use_spot_instance" {
  type        = bool
  description = "Run the instance on Spot: a persistent request whose interruption stops the instance (instance_interruption_behavior = stop). Starts can fail for lack of Spot capacity."
  default     = false
  nullable    = false
}

variable "spot_max_price" {
  type        = string
  description = "Highest hourly Spot price in USD (with use_spot_instance). Null: the On-Demand price."
  default     = null

  validation {
    condition     = var.spot_max_price == null || can(regex("^[0-9]+(\\.[0-9]+)?$", var.spot_max_price)) && try(tonumber(var.spot_max_price) > 0, false)
    error_message = "spot_max_price must be null or a positive price in USD per hour, for example \"0.30\"."
  }
}

variable "container_image" {
  type        = string
  description = "App image: an ECR URI with a tag or digest, as scripts/build-and-push.sh prints it. A new value replaces the instance."
  nullable    = false

  validation {
    condition     = can(regex("^[0-9]{12}\\.dkr\\.ecr\\.[a-z0-9-]+\\.amazonaws\\.com(\\.cn)?/[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9._-]{1,128}|@sha256:[a-f0-9]{64})$", var.container_image))
    error_message = "container_image must be an ECR image URI with a tag or digest, for example 123456789012.dkr.ecr.us-east-1.amazonaws.com/face-embed:1.0.0."
  }
}

variable "container_name" {
  type        = string
  description = "Name of the app container on the instance."
  default     = "face-embed"
  nullable    = false

  validation {
    condition     = can(regex("^[a-zA-Z0-9][a-zA-Z0-9_.-]*$", var.container_name))
    error_message = "container_name must be a valid docker container name."
  }
}

variable "app_port" {
  type        = number
  description = "Port the app listens on (published on the same host port)."
  default     = 8000
  nullable    = false

  validation {
    condition     = var.app_port >= 1024 && var.app_port <= 65535 && floor(var.app_port) == var.app_port
    error_message = "app_port must be a whole number from 1024 to 65535."
  }
}

variable "input_bucket_name" {
  type        = string
  description = "Input bucket: the app's storage (S3_BUCKET_NAME)."
  nullable    = false
}

variable "input_bucket_arn" {
  type        = string
  description = "ARN of the input bucket."
  nullable    = false
}

variable "models_bucket_name" {
  type        = string
  description = "Bucket holding the model packs."
  nullable    = false
}

variable "models_bucket_arn" {
  type        = string
  description = "ARN of the models bucket."
  nullable    = false
}

variable "models_s3_prefix" {
  type        = string
  description = "Prefix of the model packs in the models bucket (MODELS_S3_URI = s3://<models bucket>/<prefix>)."
  default     = "insightface"
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.models_s3_prefix))
    error_message = "models_s3_prefix must be a key prefix without leading or trailing slashes."
  }
}

variable "model_pack" {
  type        = string
  description = "InsightFace model pack (MODEL_PACK)."
  default     = "buffalo_l"
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]+$", var.model_pack))
    error_message = "model_pack must be a pack name such as buffalo_l."
  }
}

variable "det_size" {
  type        = number
  description = "Face detector input size (DET_SIZE)."
  default     = 640
  nullable    = false

  validation {
    condition     = var.det_size >= 160 && var.det_size <= 2048 && floor(var.det_size) == var.det_size
    error_message = "det_size must be a whole number from 160 to 2048."
  }
}

variable "execution_provider" {
  type        = string
  description = "onnxruntime execution provider (EXECUTION_PROVIDER): auto, cuda or cpu. REQUIRE_GPU is always true here."
  default     = "auto"
  nullable    = false

  validation {
    condition     = contains(["auto", "cuda", "cpu"], var.execution_provider)
    error_message = "execution_provider must be auto, cuda or cpu."
  }
}

variable "s3_upload_path" {
  type        = string
  description = "Prefix the app writes uploads and embeddings under in the input bucket (S3_UPLOAD_PATH); the instance may write only there."
  default     = "upload_with_embed"
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.s3_upload_path))
    error_message = "s3_upload_path must be a key prefix without leading or trailing slashes."
  }
}

variable "vector_index" {
  type        = string
  description = "Vector index backend (VECTOR_INDEX): embedded (on the instance's disk) or elasticsearch."
  default     = "embedded"
  nullable    = false

  validation {
    condition     = contains(["embedded", "elasticsearch"], var.vector_index)
    error_message = "vector_index must be embedded or elasticsearch."
  }
}

variable "index_name" {
  type        = string
  description = "Index name (INDEX_NAME)."
  default     = "face_embeddings"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9_][a-z0-9_.-]{0,254}$", var.index_name))
    error_message = "index_name must be lowercase letters, digits, '_', '.' or '-' (Elasticsearch index name rules)."
  }
}

variable "es_hosts" {
  type        = string
  description = "Comma-separated Elasticsearch URLs (ES_HOSTS); empty when vector_index is embedded."
  default     = ""
  nullable    = false
}

variable "es_secret_ssm_parameter_name" {
  type        = string
  description = "Elasticsearch credentials the app reads (ES_SECRET_NAME): an SSM parameter name, or secretsmanager:<name> / a Secrets Manager ARN; the instance may read it. Null: none."
  default     = null
}

variable "api_key_parameter_name" {
  type        = string
  description = "SecureString parameter holding the API key (API_KEY_SSM_PARAMETER); the app reads it at start."
  nullable    = false

  validation {
    condition     = length(var.api_key_parameter_name) > 0
    error_message = "api_key_parameter_name must not be empty."
  }
}

variable "auto_shutdown_idle_time" {
  type        = number
  description = "Idle seconds after which the idle stopper stops the instance (AUTO_SHUTDOWN_IDLE_TIME, also reported by the app)."
  default     = 3600
  nullable    = false

  validation {
    condition     = var.auto_shutdown_idle_time >= 0 && floor(var.auto_shutdown_idle_time) == var.auto_shutdown_idle_time
    error_message = "auto_shutdown_idle_time must be a whole number of seconds, 0 or more."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key of the buckets, parameters and log group; the instance role may use it. Null: AWS-managed keys."
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be null or a KMS key ARN."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the instance's log group in days (a value CloudWatch Logs accepts)."
  default     = 365
  nullable    = false

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653)."
  }
}

variable "enable_ssm_session_manager" {
  type        = bool
  description = "Attach AmazonSSMManagedInstanceCore so operators get a shell through Session Manager (no SSH, no key pair)."
  default     = true
  nullable    = false
}

variable "detailed_monitoring" {
  type        = bool
  description = "One-minute CloudWatch metrics for the instance (billed only while it runs)."
  default     = true
  nullable    = false
}

variable "disable_api_termination" {
  type        = bool
  description = "Protect the instance from termination (terraform destroy fails until this is turned off)."
  default     = false
  nullable    = false
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource."
  default     = {}
  nullable    = false
}
