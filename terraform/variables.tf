################################################################################
# General
################################################################################

variable "aws_region" {
  type        = string
  description = "AWS region of the whole stack (pick one with g4dn/g5 capacity, for example us-east-1 or eu-west-1)."
  default     = "us-east-1"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must be a region code such as us-east-1."
  }
}

variable "project_name" {
  type        = string
  description = "Project part of every name (<project_name>-<environment>-...)."
  default     = "face-embed"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.project_name))
    error_message = "project_name must be 3-20 lowercase letters, digits or hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "environment" {
  type        = string
  description = "Environment part of every name, for example dev, staging or prod."
  default     = "dev"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9]{1,10}$", var.environment))
    error_message = "environment must be 1-10 lowercase letters or digits."
  }
}

variable "tags" {
  type        = map(string)
  description = "Extra tags for every resource (Project, Environment and ManagedBy are always set)."
  default     = {}
  nullable    = false
}

variable "kms_key_arn" {
  type        = string
  description = "Existing KMS key for all of the stack's encryption. Null: the stack creates its own key (about 1 USD a month). An existing key's policy must allow what modules/kms allows."
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be null or a KMS key ARN."
  }
}

variable "kms_deletion_window_in_days" {
  type        = number
  description = "Waiting period before a destroyed stack key is deleted for good (7-30 days)."
  default     = 30
  nullable    = false

  validation {
    condition     = var.kms_deletion_window_in_days >= 7 && var.kms_deletion_window_in_days <= 30 && floor(var.kms_deletion_window_in_days) == var.kms_deletion_window_in_days
    error_message = "kms_deletion_window_in_days must be a whole number from 7 to 30."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention of every log group (Lambdas, Batch jobs, GPU instance, VPC flow log) in days."
  default     = 365
  nullable    = false

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653)."
  }
}

################################################################################
# Network
################################################################################

variable "vpc_cidr" {
  type        = string
  description = "IPv4 network address of the VPC (/16 to /24)."
  default     = "10.42.0.0/16"
  nullable    = false

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && can(regex("^[0-9.]+/(1[6-9]|2[0-4])$", var.vpc_cidr)) && try(cidrsubnet(var.vpc_cidr, 0, 0) == var.vpc_cidr, false)
    error_message = "vpc_cidr must be an IPv4 network address from /16 to /24, for example 10.42.0.0/16 (not 10.42.0.1/16)."
  }
}

variable "az_count" {
  type        = number
  description = "Availability zones to use (2-6), chosen among those that offer gpu_instance_type."
  default     = 2
  nullable    = false

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 6 && floor(var.az_count) == var.az_count
    error_message = "az_count must be a whole number from 2 to 6."
  }
}

variable "azs" {
  type        = list(string)
  description = "Explicit availability zones (overrides az_count); they must offer gpu_instance_type."
  default     = []
  nullable    = false

  validation {
    condition     = length(var.azs) == 0 || (length(var.azs) >= 2 && length(var.azs) <= 6 && length(distinct(var.azs)) == length(var.azs))
    error_message = "azs must be empty or list 2-6 distinct zones."
  }
}

variable "create_private_subnets" {
  type        = bool
  description = "Create private subnets for the Lambdas in the VPC (implied by enable_nat_gateway)."
  default     = false
  nullable    = false
}

variable "enable_nat_gateway" {
  type        = bool
  description = "NAT gateway and private subnets for the Batch and GPU instances (no public addresses). About 33 USD a month plus 0.045 USD per GB; replaces the interface endpoints."
  default     = false
  nullable    = false
}

variable "one_nat_gateway_per_az" {
  type        = bool
  description = "One NAT gateway per zone instead of one shared (with enable_nat_gateway)."
  default     = false
  nullable    = false
}

variable "enable_interface_endpoints" {
  type        = bool
  description = "Without NAT: interface endpoints for EC2, SSM and SNS so the controller and idle stopper reach those APIs from the VPC (about 7.3 USD a month each per zone). Turning them off breaks those two functions unless they have another route."
  default     = true
  nullable    = false
}

variable "interface_endpoint_az_count" {
  type        = number
  description = "Zones each interface endpoint is placed in (1 keeps the cost at about 22 USD a month for the three)."
  default     = 1
  nullable    = false

  validation {
    condition     = var.interface_endpoint_az_count >= 1 && var.interface_endpoint_az_count <= 6 && floor(var.interface_endpoint_az_count) == var.interface_endpoint_az_count
    error_message = "interface_endpoint_az_count must be a whole number from 1 to 6."
  }
}

variable "app_allowed_cidrs" {
  type        = list(string)
  description = "IPv4 network addresses (for example a VPN, 10.8.0.0/16) allowed to call the app on port 8000 besides the Lambdas. Empty by default; /0 is refused (plain HTTP)."
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
  description = "TCP ports besides 443 the Batch and GPU instances may open outbound (for example 9200 for a self-managed Elasticsearch)."
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for port in var.extra_egress_tcp_ports : port >= 1 && port <= 65535 && floor(port) == port])
    error_message = "extra_egress_tcp_ports must be whole numbers from 1 to 65535."
  }
}

variable "enable_flow_log" {
  type        = bool
  description = "VPC flow log to CloudWatch Logs (0.50 USD per GB ingested)."
  default     = true
  nullable    = false
}

################################################################################
# Storage and messaging
################################################################################

variable "s3_kms_encryption" {
  type        = bool
  description = "Encrypt the buckets with the stack's KMS key (SSE-KMS with Bucket Keys). False: SSE-S3."
  default     = true
  nullable    = false
}

variable "s3_force_destroy" {
  type        = bool
  description = "Let terraform destroy delete non-empty buckets with all their objects. Only for throwaway environments."
  default     = false
  nullable    = false
}

variable "s3_noncurrent_version_expiration_days" {
  type        = number
  description = "Days overwritten or deleted object versions are kept."
  default     = 30
  nullable    = false

  validation {
    condition     = var.s3_noncurrent_version_expiration_days >= 1 && floor(var.s3_noncurrent_version_expiration_days) == var.s3_noncurrent_version_expiration_days
    error_message = "s3_noncurrent_version_expiration_days must be a whole number of at least 1."
  }
}

variable "s3_access_logging" {
  type        = bool
  description = "Server access logs of the data buckets into a separate log bucket."
  default     = true
  nullable    = false
}

variable "enable_s3_event_notifications" {
  type        = bool
  description = "Send ObjectCreated events of the input bucket (under s3_event_filter_prefix) to the S3 event queue, which the dispatcher consumes with a batching window."
  default     = false
  nullable    = false
}

variable "s3_event_filter_prefix" {
  type        = string
  description = "Key prefix that raises events when enable_s3_event_notifications (keep it apart from s3_upload_path)."
  default     = "incoming/"
  nullable    = false
}

variable "s3_event_images_batch_threshold" {
  type        = number
  description = "Images of one event delivery above this count go to a face_embedding Batch job through a manifest, not to the GPU instance (EVENT_BATCH_THRESHOLD)."
  default     = 200
  nullable    = false

  validation {
    condition     = var.s3_event_images_batch_threshold >= 0 && floor(var.s3_event_images_batch_threshold) == var.s3_event_images_batch_threshold
    error_message = "s3_event_images_batch_threshold must be a whole number, 0 or more."
  }
}

variable "s3_event_video_instance_max_bytes" {
  type        = number
  description = "Videos uploaded under the event prefix up to this size are processed on the GPU instance (POST /videos); larger ones by a Batch video job (VIDEO_INSTANCE_MAX_BYTES)."
  default     = 209715200
  nullable    = false

  validation {
    condition     = var.s3_event_video_instance_max_bytes >= 0 && floor(var.s3_event_video_instance_max_bytes) == var.s3_event_video_instance_max_bytes
    error_message = "s3_event_video_instance_max_bytes must be a whole number of bytes, 0 or more."
  }
}

variable "s3_event_filter_suffix" {
  type        = string
  description = "Key suffix that raises events (empty: any), for example .json for manifests."
  default     = ""
  nullable    = false
}

variable "notification_emails" {
  type        = list(string)
  description = "Addresses that receive job results, instance state and dead-letter alarms (each confirms a subscription mail)."
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for email in var.notification_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", email))])
    error_message = "notification_emails must be email addresses."
  }
}

variable "trigger_publisher_principal_arns" {
  type        = list(string)
  description = "IAM principals of other accounts allowed to publish triggers (principals of this account need only IAM permissions)."
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for arn in var.trigger_publisher_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(root|role/.+|user/.+)$", arn))])
    error_message = "trigger_publisher_principal_arns must be IAM account, role or user ARNs."
  }
}

################################################################################
# App (the same image serves on the GPU instance and runs the Batch jobs)
################################################################################

variable "container_image" {
  type        = string
  description = "ECR URI of the gpu_app image with a tag or digest, as printed by scripts/build-and-push.sh. A new value replaces the GPU instance and registers new job definition revisions. Required (ml_container_image is accepted as its alias)."
  default     = null

  validation {
    condition     = var.container_image == null || can(regex("^[0-9]{12}\\.dkr\\.ecr\\.[a-z0-9-]+\\.amazonaws\\.com(\\.cn)?/[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9._-]{1,128}|@sha256:[a-f0-9]{64})$", var.container_image))
    error_message = "container_image must be an ECR image URI with a tag or digest, for example 123456789012.dkr.ecr.us-east-1.amazonaws.com/face-embed:1.0.0."
  }
}

variable "ml_container_image" {
  type        = string
  description = "Alias of container_image, for tfvars written for the GPU ML pipeline design. Set one of the two; both only if they are equal."
  default     = null

  validation {
    condition     = var.ml_container_image == null || can(regex("^[0-9]{12}\\.dkr\\.ecr\\.[a-z0-9-]+\\.amazonaws\\.com(\\.cn)?/[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9._-]{1,128}|@sha256:[a-f0-9]{64})$", var.ml_container_image))
    error_message = "ml_container_image must be an ECR image URI with a tag or digest (it is an alias of container_image)."
  }

  # Both cross-checks live here: validations of two variables may not refer to each other.
  validation {
    condition     = var.container_image != null || var.ml_container_image != null
    error_message = "Set container_image to the gpu_app image in ECR (ml_container_image is accepted as its alias), for example 123456789012.dkr.ecr.us-east-1.amazonaws.com/face-embed:1.0.0."
  }

  validation {
    condition     = var.ml_container_image == null || var.container_image == null || var.ml_container_image == var.container_image
    error_message = "ml_container_image is an alias of container_image: set only one of them (they differ)."
  }
}

variable "cpu_container_image" {
  type        = string
  default     = null
  description = "Image the CPU job definitions run (docker/Dockerfile.cpu, without CUDA). Null: container_image (the GPU image), whose onnxruntime-gpu also runs on CPU."

  validation {
    condition     = var.cpu_container_image == null || can(regex("^[0-9]{12}\\.dkr\\.ecr\\.[a-z0-9-]+\\.amazonaws\\.com(\\.cn)?/[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9._-]{1,128}|@sha256:[a-f0-9]{64})$", var.cpu_container_image))
    error_message = "cpu_container_image must be null or an ECR image URI with a tag or digest."
  }
}

variable "api_key_parameter_name" {
  type        = string
  description = "Existing SecureString parameter holding the API key. Null: Terraform creates /<project_name>/<environment>/api-key with a placeholder that you overwrite (README)."
  default     = null

  validation {
    condition     = var.api_key_parameter_name == null || can(regex("^/?[A-Za-z0-9_.\\-/]{1,1000}$", var.api_key_parameter_name))
    error_message = "api_key_parameter_name must be null or an SSM parameter name."
  }
}

variable "model_pack" {
  type        = string
  description = "InsightFace model pack (MODEL_PACK), synced from the models bucket."
  default     = "buffalo_l"
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]+$", var.model_pack))
    error_message = "model_pack must be a pack name such as buffalo_l."
  }
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
  description = "onnxruntime execution provider on the GPU instance and in GPU jobs (EXECUTION_PROVIDER): auto, cuda or cpu. CPU jobs always use cpu."
  default     = "auto"
  nullable    = false

  validation {
    condition     = contains(["auto", "cuda", "cpu"], var.execution_provider)
    error_message = "execution_provider must be auto, cuda or cpu."
  }
}

variable "vector_index" {
  type        = string
  description = "Vector index (VECTOR_INDEX): embedded (on the GPU instance's disk) or elasticsearch (es_hosts)."
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
  description = "Comma-separated Elasticsearch URLs (ES_HOSTS) when vector_index is elasticsearch."
  default     = ""
  nullable    = false

  validation {
    condition     = var.es_hosts == "" || alltrue([for url in split(",", var.es_hosts) : can(regex("^https?://[^\\s,]+$", trimspace(url)))])
    error_message = "es_hosts must be empty or comma-separated http(s) URLs."
  }
}

variable "es_secret_ssm_parameter" {
  type        = string
  description = "Elasticsearch credentials (the app reads the name from ES_SECRET_NAME): an SSM parameter name, or secretsmanager:<name> or a Secrets Manager ARN; the instance and the jobs may read it. Null: none."
  default     = null

  validation {
    condition     = var.es_secret_ssm_parameter == null || can(regex("^(/?[A-Za-z0-9_.\\-/]{1,1000}|secretsmanager:[A-Za-z0-9/_+=.@-]{1,512}|arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+)$", var.es_secret_ssm_parameter))
    error_message = "es_secret_ssm_parameter must be null, an SSM parameter name, secretsmanager:<name> or a Secrets Manager ARN."
  }
}

variable "s3_upload_path" {
  type        = string
  description = "Prefix in the input bucket the app writes uploads and embeddings under (S3_UPLOAD_PATH)."
  default     = "upload_with_embed"
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.s3_upload_path))
    error_message = "s3_upload_path must be a key prefix without leading or trailing slashes."
  }
}

variable "dispatcher_read_prefixes" {
  type        = list(string)
  description = "Key prefixes of the input bucket whose objects the dispatcher may read: the scripts of batch_job triggers (script_key) and the manifests of face_embedding triggers (manifest_key). Keys elsewhere are refused. Empty: the dispatcher reads no object (prefix-based embedding still works)."
  default     = ["jobs/", "manifests/"]
  nullable    = false

  validation {
    condition     = alltrue([for prefix in var.dispatcher_read_prefixes : can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*/$", prefix))])
    error_message = "dispatcher_read_prefixes must be key prefixes ending with a slash and without a leading one, for example jobs/."
  }
}

variable "auto_shutdown_idle_time" {
  type        = number
  description = "Seconds without work after which the idle stopper stops the GPU instance (AUTO_SHUTDOWN_IDLE_TIME)."
  default     = 3600
  nullable    = false

  validation {
    condition     = var.auto_shutdown_idle_time >= 300 && floor(var.auto_shutdown_idle_time) == var.auto_shutdown_idle_time
    error_message = "auto_shutdown_idle_time must be a whole number of seconds, at least 300."
  }
}

################################################################################
# Batch
################################################################################

variable "ml_gpu_use_spot_instances" {
  type        = bool
  description = "GPU jobs on Spot (SPOT_CAPACITY_OPTIMIZED, up to about 70% cheaper, reclaimed jobs are retried) instead of On-Demand."
  default     = true
  nullable    = false
}

variable "ml_cpu_use_spot_instances" {
  type        = bool
  description = "CPU jobs on Spot (SPOT_CAPACITY_OPTIMIZED, reclaimed jobs are retried) instead of On-Demand."
  default     = true
  nullable    = false
}

variable "batch_gpu_instance_types" {
  type        = list(string)
  description = "Instance families or types of the GPU compute environment."
  default     = ["g4dn", "g5"]
  nullable    = false

  validation {
    condition     = length(var.batch_gpu_instance_types) > 0 && alltrue([for type in var.batch_gpu_instance_types : can(regex("^(g4dn|g5|g6|g6e|p3|p4d|p5)(\\.[a-z0-9]+)?$", type))])
    error_message = "batch_gpu_instance_types must be NVIDIA GPU families or types (g4dn, g5, g6, g6e, p3, p4d, p5, optionally with a size)."
  }
}

variable "batch_cpu_instance_types" {
  type        = list(string)
  description = "Instance families or types of the CPU compute environment."
  default     = ["m5", "c5"]
  nullable    = false

  validation {
    condition     = length(var.batch_cpu_instance_types) > 0 && alltrue([for type in var.batch_cpu_instance_types : can(regex("^[a-z][a-z0-9-]*(\\.[a-z0-9]+)?$", type)) && !can(regex("^(g|p)[0-9]", type))])
    error_message = "batch_cpu_instance_types must be instance families or types without GPUs (for example m5, c5, m6i.large)."
  }
}

variable "batch_gpu_max_vcpus" {
  type        = number
  description = "Most vCPUs the GPU environment runs at once (caps the spend; 16 = four g4dn.xlarge)."
  default     = 16
  nullable    = false

  validation {
    condition     = var.batch_gpu_max_vcpus >= 4 && floor(var.batch_gpu_max_vcpus) == var.batch_gpu_max_vcpus
    error_message = "batch_gpu_max_vcpus must be a whole number of at least 4."
  }
}

variable "batch_cpu_max_vcpus" {
  type        = number
  description = "Most vCPUs the CPU environment runs at once (caps the spend)."
  default     = 32
  nullable    = false

  validation {
    condition     = var.batch_cpu_max_vcpus >= 2 && floor(var.batch_cpu_max_vcpus) == var.batch_cpu_max_vcpus
    error_message = "batch_cpu_max_vcpus must be a whole number of at least 2."
  }
}

variable "batch_gpu_image_type" {
  type        = string
  description = "Batch-managed GPU AMI: ECS_AL2023_NVIDIA or ECS_AL2_NVIDIA."
  default     = "ECS_AL2023_NVIDIA"
  nullable    = false

  validation {
    condition     = contains(["ECS_AL2023_NVIDIA", "ECS_AL2_NVIDIA"], var.batch_gpu_image_type)
    error_message = "batch_gpu_image_type must be ECS_AL2023_NVIDIA or ECS_AL2_NVIDIA."
  }
}

variable "ml_gpu_job_vcpus" {
  type        = number
  description = "vCPUs of a GPU job (job definition default and DEFAULT_GPU_VCPUS); at most batch_gpu_max_vcpus."
  default     = 4
  nullable    = false

  validation {
    condition     = var.ml_gpu_job_vcpus >= 1 && floor(var.ml_gpu_job_vcpus) == var.ml_gpu_job_vcpus
    error_message = "ml_gpu_job_vcpus must be a whole number of at least 1."
  }

  validation {
    condition     = var.ml_gpu_job_vcpus <= var.batch_gpu_max_vcpus
    error_message = "ml_gpu_job_vcpus must not exceed batch_gpu_max_vcpus: such a job could never run."
  }
}

variable "ml_gpu_job_memory" {
  type        = number
  description = "Memory of a GPU job in MiB (job definition default and DEFAULT_GPU_MEMORY)."
  default     = 16384
  nullable    = false

  validation {
    condition     = var.ml_gpu_job_memory >= 512 && floor(var.ml_gpu_job_memory) == var.ml_gpu_job_memory
    error_message = "ml_gpu_job_memory must be a whole number of MiB, at least 512."
  }
}

variable "ml_gpu_job_gpus" {
  type        = number
  description = "GPUs of a GPU job (job definition default and DEFAULT_GPU_GPUS)."
  default     = 1
  nullable    = false

  validation {
    condition     = var.ml_gpu_job_gpus >= 1 && var.ml_gpu_job_gpus <= 8 && floor(var.ml_gpu_job_gpus) == var.ml_gpu_job_gpus
    error_message = "ml_gpu_job_gpus must be a whole number from 1 to 8."
  }
}

variable "ml_cpu_job_vcpus" {
  type        = number
  description = "vCPUs of a CPU job (job definition default and DEFAULT_CPU_VCPUS); at most batch_cpu_max_vcpus."
  default     = 2
  nullable    = false

  validation {
    condition     = var.ml_cpu_job_vcpus >= 1 && floor(var.ml_cpu_job_vcpus) == var.ml_cpu_job_vcpus
    error_message = "ml_cpu_job_vcpus must be a whole number of at least 1."
  }

  validation {
    condition     = var.ml_cpu_job_vcpus <= var.batch_cpu_max_vcpus
    error_message = "ml_cpu_job_vcpus must not exceed batch_cpu_max_vcpus: such a job could never run."
  }
}

variable "ml_cpu_job_memory" {
  type        = number
  description = "Memory of a CPU job in MiB (job definition default and DEFAULT_CPU_MEMORY)."
  default     = 4096
  nullable    = false

  validation {
    condition     = var.ml_cpu_job_memory >= 512 && floor(var.ml_cpu_job_memory) == var.ml_cpu_job_memory
    error_message = "ml_cpu_job_memory must be a whole number of MiB, at least 512."
  }
}

variable "batch_job_attempts" {
  type        = number
  description = "Attempts per job (only Spot reclaims are retried)."
  default     = 3
  nullable    = false

  validation {
    condition     = var.batch_job_attempts >= 1 && var.batch_job_attempts <= 10 && floor(var.batch_job_attempts) == var.batch_job_attempts
    error_message = "batch_job_attempts must be a whole number from 1 to 10."
  }
}

variable "batch_job_timeout_seconds" {
  type        = number
  description = "Batch terminates an attempt running longer than this."
  default     = 14400
  nullable    = false

  validation {
    condition     = var.batch_job_timeout_seconds >= 60 && floor(var.batch_job_timeout_seconds) == var.batch_job_timeout_seconds
    error_message = "batch_job_timeout_seconds must be a whole number of at least 60."
  }
}

variable "batch_runnable_timeout_seconds" {
  type        = number
  description = "Jobs stuck RUNNABLE this long (no capacity, or too big for any environment) are cancelled with the reason (600-86400)."
  default     = 1800
  nullable    = false

  validation {
    condition     = var.batch_runnable_timeout_seconds >= 600 && var.batch_runnable_timeout_seconds <= 86400 && floor(var.batch_runnable_timeout_seconds) == var.batch_runnable_timeout_seconds
    error_message = "batch_runnable_timeout_seconds must be a whole number from 600 to 86400."
  }
}

variable "job_max_vcpus" {
  type        = number
  description = "Most vCPUs a trigger may ask for per job (MAX_VCPUS)."
  default     = 96
  nullable    = false

  validation {
    condition     = var.job_max_vcpus >= 1 && floor(var.job_max_vcpus) == var.job_max_vcpus
    error_message = "job_max_vcpus must be a whole number of at least 1."
  }
}

variable "job_max_memory" {
  type        = number
  description = "Most memory in MiB a trigger may ask for per job (MAX_MEMORY)."
  default     = 393216
  nullable    = false

  validation {
    condition     = var.job_max_memory >= 512 && floor(var.job_max_memory) == var.job_max_memory
    error_message = "job_max_memory must be a whole number of MiB, at least 512."
  }
}

variable "job_max_gpus" {
  type        = number
  description = "Most GPUs a trigger may ask for per job (MAX_GPUS)."
  default     = 8
  nullable    = false

  validation {
    condition     = var.job_max_gpus >= 1 && floor(var.job_max_gpus) == var.job_max_gpus
    error_message = "job_max_gpus must be a whole number of at least 1."
  }
}

variable "job_min_memory" {
  type        = number
  description = "Least memory in MiB a job gets (MIN_MEMORY)."
  default     = 512
  nullable    = false

  validation {
    condition     = var.job_min_memory >= 4 && floor(var.job_min_memory) == var.job_min_memory
    error_message = "job_min_memory must be a whole number of MiB, at least 4."
  }
}

variable "images_per_child" {
  type        = number
  description = "Images per child job when the dispatcher splits a large input (IMAGES_PER_CHILD)."
  default     = 1000
  nullable    = false

  validation {
    condition     = var.images_per_child >= 1 && floor(var.images_per_child) == var.images_per_child
    error_message = "images_per_child must be a whole number of at least 1."
  }
}

################################################################################
# GPU instance
################################################################################

variable "gpu_instance_type" {
  type        = string
  description = "Type of the GPU instance that serves the API (T4 on g4dn.xlarge is the cheapest NVIDIA option)."
  default     = "g4dn.xlarge"
  nullable    = false

  validation {
    condition     = can(regex("^(g4dn|g5|g6|g6e|gr6|p3|p3dn|p4d|p4de|p5|p5e|p5en)\\.[a-z0-9]+$", var.gpu_instance_type))
    error_message = "gpu_instance_type must be an x86_64 NVIDIA GPU type such as g4dn.xlarge, g5.xlarge or g6.xlarge."
  }
}

variable "gpu_ami_id" {
  type        = string
  description = "AMI of the GPU instance. Null: the latest AWS Deep Learning Base OSS Nvidia Driver GPU AMI (Amazon Linux 2023); later releases do not replace the instance."
  default     = null

  validation {
    condition     = var.gpu_ami_id == null || can(regex("^ami-[0-9a-f]{8,17}$", var.gpu_ami_id))
    error_message = "gpu_ami_id must be null or an AMI id."
  }
}

variable "gpu_root_volume_size" {
  type        = number
  description = "Encrypted root volume of the GPU instance in GiB."
  default     = 100
  nullable    = false

  validation {
    condition     = var.gpu_root_volume_size >= 75 && var.gpu_root_volume_size <= 16384 && floor(var.gpu_root_volume_size) == var.gpu_root_volume_size
    error_message = "gpu_root_volume_size must be a whole number from 75 to 16384."
  }
}

variable "gpu_stop_after_first_boot" {
  type        = bool
  description = "The instance provisions itself on first boot (driver check, image pull, app start) and then stops; the controller starts it on demand. False: it keeps running after the first boot."
  default     = true
  nullable    = false
}

variable "gpu_fallback_instance_types" {
  type        = list(string)
  description = "Types the controller may switch the stopped instance to when gpu_instance_type has no capacity (FALLBACK_INSTANCE_TYPES), for example [\"g5.xlarge\"]."
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for type in var.gpu_fallback_instance_types : can(regex("^(g4dn|g5|g6|g6e|gr6|p3|p3dn|p4d|p4de|p5|p5e|p5en)\\.[a-z0-9]+$", type))])
    error_message = "gpu_fallback_instance_types must be x86_64 NVIDIA GPU types such as g5.xlarge."
  }
}

variable "gpu_use_spot_instance" {
  type        = bool
  description = "Run the GPU instance on Spot (a persistent request that stops, not terminates, on interruption; up to about 70% cheaper). A start can then fail for lack of Spot capacity: the controller reports it and retries later. Changing it replaces the instance."
  default     = false
  nullable    = false
}

variable "gpu_spot_max_price" {
  type        = string
  description = "Highest hourly price in USD for the Spot GPU instance (gpu_use_spot_instance). Null: the On-Demand price."
  default     = null

  validation {
    condition     = var.gpu_spot_max_price == null || can(regex("^[0-9]+(\\.[0-9]+)?$", var.gpu_spot_max_price)) && try(tonumber(var.gpu_spot_max_price) > 0, false)
    error_message = "gpu_spot_max_price must be null or a positive price in USD per hour, for example \"0.30\"."
  }
}

variable "enable_ssm_session_manager" {
  type        = bool
  description = "Allow shell access to the GPU instance through SSM Session Manager (there is no SSH)."
  default     = true
  nullable    = false
}

################################################################################
# Lambdas
################################################################################

variable "lambda_build_dir" {
  type        = string
  description = "Folder with dispatcher.zip, controller.zip, monitor.zip and idle_stopper.zip. Null: build/lambda at the repository root, which make package fills."
  default     = null
}

variable "lambda_architecture" {
  type        = string
  description = "Lambda architecture: x86_64 or arm64 (arm64 is about 20% cheaper; make package must build for it)."
  default     = "x86_64"
  nullable    = false

  validation {
    condition     = contains(["x86_64", "arm64"], var.lambda_architecture)
    error_message = "lambda_architecture must be x86_64 or arm64."
  }
}

variable "lambda_log_level" {
  type        = string
  description = "Log level of the functions (POWERTOOLS_LOG_LEVEL)."
  default     = "INFO"
  nullable    = false

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], var.lambda_log_level)
    error_message = "lambda_log_level must be DEBUG, INFO, WARNING, ERROR or CRITICAL."
  }
}

variable "lambda_tracing_mode" {
  type        = string
  description = "X-Ray tracing of the functions: Active or PassThrough."
  default     = "Active"
  nullable    = false

  validation {
    condition     = contains(["Active", "PassThrough"], var.lambda_tracing_mode)
    error_message = "lambda_tracing_mode must be Active or PassThrough."
  }
}

variable "idle_check_schedule" {
  type        = string
  description = "How often the idle stopper checks the GPU instance (EventBridge rate or cron expression)."
  default     = "rate(5 minutes)"
  nullable    = false

  validation {
    condition     = can(regex("^(rate\\([1-9][0-9]* (minute|minutes|hour|hours|day|days)\\)|cron\\(.+\\))$", var.idle_check_schedule))
    error_message = "idle_check_schedule must be an EventBridge rate(...) or cron(...) expression."
  }
}

variable "controller_start_timeout_seconds" {
  type        = number
  description = "How long the controller waits for the instance to run (START_TIMEOUT_SECONDS)."
  default     = 300
  nullable    = false

  validation {
    condition     = var.controller_start_timeout_seconds >= 30 && floor(var.controller_start_timeout_seconds) == var.controller_start_timeout_seconds
    error_message = "controller_start_timeout_seconds must be a whole number of at least 30."
  }
}

variable "controller_health_timeout_seconds" {
  type        = number
  description = "How long the controller waits for the app's /health after a start (HEALTH_TIMEOUT_SECONDS); start + health must fit the controller's 900 s timeout."
  default     = 600
  nullable    = false

  validation {
    condition     = var.controller_health_timeout_seconds >= 30 && floor(var.controller_health_timeout_seconds) == var.controller_health_timeout_seconds
    error_message = "controller_health_timeout_seconds must be a whole number of at least 30."
  }

  validation {
    condition     = var.controller_start_timeout_seconds + var.controller_health_timeout_seconds <= 900
    error_message = "controller_start_timeout_seconds + controller_health_timeout_seconds must fit the controller's 900 s Lambda timeout."
  }
}

variable "unreachable_grace_seconds" {
  type        = number
  description = "How long a running instance may fail health checks before the idle stopper stops it anyway (UNREACHABLE_GRACE_SECONDS)."
  default     = 900
  nullable    = false

  validation {
    condition     = var.unreachable_grace_seconds >= 0 && floor(var.unreachable_grace_seconds) == var.unreachable_grace_seconds
    error_message = "unreachable_grace_seconds must be a whole number of seconds, 0 or more."
  }
}

variable "s3_event_batching_window_seconds" {
  type        = number
  description = "With enable_s3_event_notifications: how long (0-300 s) the event queue's mapping gathers upload events before it invokes the dispatcher; the images uploaded in that window become one start_and_process. Null: the modules/event_queue default (10)."
  default     = null
}

variable "s3_event_batch_size" {
  type        = number
  description = "With enable_s3_event_notifications: most upload events in one dispatcher invocation (1-10000; above 10 needs a batching window of at least 1 s). Null: the modules/event_queue default (1000)."
  default     = null
}
