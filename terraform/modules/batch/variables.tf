variable "name_prefix" {
  type        = string
  description = "Prefix of every name (<project>-<environment>)."
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,38}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-40 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "subnet_ids" {
  type        = list(string)
  description = "Subnets the compute instances run in (public ones need map_public_ip_on_launch when there is no NAT gateway)."
  nullable    = false

  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "subnet_ids must list at least one subnet."
  }
}

variable "security_group_ids" {
  type        = list(string)
  description = "Security groups of the compute instances (egress only)."
  nullable    = false

  validation {
    condition     = length(var.security_group_ids) > 0
    error_message = "security_group_ids must list at least one security group."
  }
}

variable "container_image" {
  type        = string
  description = "Image of gpu_app the jobs run: an ECR URI with a tag or digest, as scripts/build-and-push.sh prints it."
  nullable    = false

  validation {
    condition     = can(regex("^[0-9]{12}\\.dkr\\.ecr\\.[a-z0-9-]+\\.amazonaws\\.com(\\.cn)?/[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9._-]{1,128}|@sha256:[a-f0-9]{64})$", var.container_image))
    error_message = "container_image must be an ECR image URI with a tag or digest, for example 123456789012.dkr.ecr.us-east-1.amazonaws.com/face-embed:1.0.0."
  }
}

variable "cpu_container_image" {
  type        = string
  default     = null
  description = "Image the CPU job definitions run (docker/Dockerfile.cpu, without CUDA). Null: container_image, whose onnxruntime-gpu also runs on CPU."

  validation {
    condition     = var.cpu_container_image == null || can(regex("^[0-9]{12}\\.dkr\\.ecr\\.[a-z0-9-]+\\.amazonaws\\.com(\\.cn)?/[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9._-]{1,128}|@sha256:[a-f0-9]{64})$", var.cpu_container_image))
    error_message = "cpu_container_image must be null or an ECR image URI with a tag or digest."
  }
}

variable "input_bucket_name" {
  type        = string
  description = "Input bucket (ML_INPUT_BUCKET, and S3_BUCKET_NAME of the app's storage)."
  nullable    = false
}

variable "input_bucket_arn" {
  type        = string
  description = "ARN of the input bucket."
  nullable    = false
}

variable "output_bucket_name" {
  type        = string
  description = "Output bucket (ML_OUTPUT_BUCKET)."
  nullable    = false
}

variable "output_bucket_arn" {
  type        = string
  description = "ARN of the output bucket."
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

variable "gpu_execution_provider" {
  type        = string
  description = "EXECUTION_PROVIDER of the GPU job definitions (auto or cuda); the CPU ones always use cpu."
  default     = "auto"
  nullable    = false

  validation {
    condition     = contains(["auto", "cuda"], var.gpu_execution_provider)
    error_message = "gpu_execution_provider must be auto or cuda."
  }
}

variable "s3_upload_path" {
  type        = string
  description = "Prefix the app writes uploads and embeddings under in the input bucket (S3_UPLOAD_PATH)."
  default     = "upload_with_embed"
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.s3_upload_path))
    error_message = "s3_upload_path must be a key prefix without leading or trailing slashes."
  }
}

variable "vector_index" {
  type        = string
  description = "Vector index backend (VECTOR_INDEX): embedded or elasticsearch."
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
  description = "Elasticsearch credentials (ES_SECRET_NAME): an SSM parameter name, or secretsmanager:<name> / a Secrets Manager ARN; the job role may read it. Null: none."
  default     = null
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key of the buckets, parameters and log group; the job role may use it. Null: AWS-managed keys."
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be null or a KMS key ARN."
  }
}

variable "gpu_use_spot_instances" {
  type        = bool
  description = "GPU compute environment on Spot (SPOT_CAPACITY_OPTIMIZED) instead of On-Demand (BEST_FIT_PROGRESSIVE). Reclaimed jobs are retried."
  default     = true
  nullable    = false
}

variable "cpu_use_spot_instances" {
  type        = bool
  description = "CPU compute environment on Spot (SPOT_CAPACITY_OPTIMIZED) instead of On-Demand (BEST_FIT_PROGRESSIVE). Reclaimed jobs are retried."
  default     = true
  nullable    = false
}

variable "spot_bid_percentage" {
  type        = number
  description = "Highest Spot price, as a percentage of the On-Demand price."
  default     = 100
  nullable    = false

  validation {
    condition     = var.spot_bid_percentage >= 1 && var.spot_bid_percentage <= 100 && floor(var.spot_bid_percentage) == var.spot_bid_percentage
    error_message = "spot_bid_percentage must be a whole number from 1 to 100."
  }
}

variable "gpu_instance_types" {
  type        = list(string)
  description = "Instance types or families of the GPU compute environment (g4dn = T4, g5 = A10G)."
  default     = ["g4dn", "g5"]
  nullable    = false

  validation {
    condition     = length(var.gpu_instance_types) > 0 && alltrue([for type in var.gpu_instance_types : can(regex("^(g4dn|g5|g6|g6e|p3|p4d|p5)(\\.[a-z0-9]+)?$", type))])
    error_message = "gpu_instance_types must be NVIDIA GPU families or types (g4dn, g5, g6, g6e, p3, p4d, p5, optionally with a size)."
  }
}

variable "cpu_instance_types" {
  type        = list(string)
  description = "Instance types or families of the CPU compute environment."
  default     = ["m5", "c5"]
  nullable    = false

  validation {
    condition     = length(var.cpu_instance_types) > 0 && alltrue([for type in var.cpu_instance_types : can(regex("^[a-z][a-z0-9-]*(\\.[a-z0-9]+)?$", type)) && !can(regex("^(g|p)[0-9]", type))])
    error_message = "cpu_instance_types must be instance families or types without GPUs (for example m5, c5, m6i.large)."
  }
}

variable "gpu_max_vcpus" {
  type        = number
  description = "Most vCPUs the GPU environment runs at once (caps the cost)."
  default     = 16
  nullable    = false

  validation {
    condition     = var.gpu_max_vcpus >= 4 && floor(var.gpu_max_vcpus) == var.gpu_max_vcpus
    error_message = "gpu_max_vcpus must be a whole number of at least 4 (the smallest GPU instances have 4 vCPUs)."
  }
}

variable "cpu_max_vcpus" {
  type        = number
  description = "Most vCPUs the CPU environment runs at once (caps the cost)."
  default     = 32
  nullable    = false

  validation {
    condition     = var.cpu_max_vcpus >= 2 && floor(var.cpu_max_vcpus) == var.cpu_max_vcpus
    error_message = "cpu_max_vcpus must be a whole number of at least 2."
  }
}

variable "gpu_image_type" {
  type        = string
  description = "Batch-managed AMI of the GPU environment: ECS_AL2023_NVIDIA (NVIDIA driver and container toolkit) or ECS_AL2_NVIDIA."
  default     = "ECS_AL2023_NVIDIA"
  nullable    = false

  validation {
    condition     = contains(["ECS_AL2023_NVIDIA", "ECS_AL2_NVIDIA"], var.gpu_image_type)
    error_message = "gpu_image_type must be ECS_AL2023_NVIDIA or ECS_AL2_NVIDIA."
  }
}

variable "cpu_image_type" {
  type        = string
  description = "Batch-managed AMI of the CPU environment: ECS_AL2023 or ECS_AL2."
  default     = "ECS_AL2023"
  nullable    = false

  validation {
    condition     = contains(["ECS_AL2023", "ECS_AL2"], var.cpu_image_type)
    error_message = "cpu_image_type must be ECS_AL2023 or ECS_AL2."
  }
}

variable "gpu_image_id_override" {
  type        = string
  description = "AMI replacing the Batch-managed GPU AMI (null: the latest one of gpu_image_type)."
  default     = null

  validation {
    condition     = var.gpu_image_id_override == null || can(regex("^ami-[0-9a-f]{8,17}$", var.gpu_image_id_override))
    error_message = "gpu_image_id_override must be null or an AMI id."
  }
}

variable "cpu_image_id_override" {
  type        = string
  description = "AMI replacing the Batch-managed CPU AMI (null: the latest one of cpu_image_type)."
  default     = null

  validation {
    condition     = var.cpu_image_id_override == null || can(regex("^ami-[0-9a-f]{8,17}$", var.cpu_image_id_override))
    error_message = "cpu_image_id_override must be null or an AMI id."
  }
}

variable "root_volume_size" {
  type        = number
  description = "Root volume of the compute instances in GiB (images and model packs are cached there)."
  default     = 100
  nullable    = false

  validation {
    condition     = var.root_volume_size >= 30 && var.root_volume_size <= 16384 && floor(var.root_volume_size) == var.root_volume_size
    error_message = "root_volume_size must be a whole number from 30 to 16384."
  }
}

variable "gpu_job_vcpus" {
  type        = number
  description = "vCPUs of a GPU job (VCPU resource requirement)."
  default     = 4
  nullable    = false

  validation {
    condition     = var.gpu_job_vcpus >= 1 && floor(var.gpu_job_vcpus) == var.gpu_job_vcpus
    error_message = "gpu_job_vcpus must be a whole number of at least 1."
  }

  validation {
    condition     = var.gpu_job_vcpus <= var.gpu_max_vcpus
    error_message = "gpu_job_vcpus must not exceed gpu_max_vcpus: such a job could never run in the GPU compute environment."
  }
}

variable "gpu_job_memory" {
  type        = number
  description = "Memory of a GPU job in MiB (MEMORY resource requirement)."
  default     = 16384
  nullable    = false

  validation {
    condition     = var.gpu_job_memory >= 512 && floor(var.gpu_job_memory) == var.gpu_job_memory
    error_message = "gpu_job_memory must be a whole number of MiB, at least 512."
  }
}

variable "gpu_job_gpus" {
  type        = number
  description = "GPUs of a GPU job (GPU resource requirement)."
  default     = 1
  nullable    = false

  validation {
    condition     = var.gpu_job_gpus >= 1 && var.gpu_job_gpus <= 8 && floor(var.gpu_job_gpus) == var.gpu_job_gpus
    error_message = "gpu_job_gpus must be a whole number from 1 to 8."
  }
}

variable "cpu_job_vcpus" {
  type        = number
  description = "vCPUs of a CPU job (VCPU resource requirement)."
  default     = 2
  nullable    = false

  validation {
    condition     = var.cpu_job_vcpus >= 1 && floor(var.cpu_job_vcpus) == var.cpu_job_vcpus
    error_message = "cpu_job_vcpus must be a whole number of at least 1."
  }

  validation {
    condition     = var.cpu_job_vcpus <= var.cpu_max_vcpus
    error_message = "cpu_job_vcpus must not exceed cpu_max_vcpus: such a job could never run in the CPU compute environment."
  }
}

variable "cpu_job_memory" {
  type        = number
  description = "Memory of a CPU job in MiB (MEMORY resource requirement)."
  default     = 4096
  nullable    = false

  validation {
    condition     = var.cpu_job_memory >= 512 && floor(var.cpu_job_memory) == var.cpu_job_memory
    error_message = "cpu_job_memory must be a whole number of MiB, at least 512."
  }
}

variable "job_attempts" {
  type        = number
  description = "Attempts per job (1-10). Only Spot reclaims are retried; application errors end the job."
  default     = 3
  nullable    = false

  validation {
    condition     = var.job_attempts >= 1 && var.job_attempts <= 10 && floor(var.job_attempts) == var.job_attempts
    error_message = "job_attempts must be a whole number from 1 to 10."
  }
}

variable "job_timeout_seconds" {
  type        = number
  description = "Batch terminates an attempt that runs longer than this."
  default     = 14400
  nullable    = false

  validation {
    condition     = var.job_timeout_seconds >= 60 && floor(var.job_timeout_seconds) == var.job_timeout_seconds
    error_message = "job_timeout_seconds must be a whole number of at least 60."
  }
}

variable "runnable_timeout_seconds" {
  type        = number
  description = "A job stuck RUNNABLE this long (no capacity, or no environment can ever fit it) is cancelled with the reason (600-86400)."
  default     = 1800
  nullable    = false

  validation {
    condition     = var.runnable_timeout_seconds >= 600 && var.runnable_timeout_seconds <= 86400 && floor(var.runnable_timeout_seconds) == var.runnable_timeout_seconds
    error_message = "runnable_timeout_seconds must be a whole number from 600 to 86400."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the job log group in days (a value CloudWatch Logs accepts)."
  default     = 365
  nullable    = false

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653)."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource (also propagated to jobs and instances)."
  default     = {}
  nullable    = false
}
