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
}

variable "kms_deletion_window_in_days" {
  type        = number
  description = "Waiting period before a destroyed stack key is deleted for good (7-30 days). Null: the modules/kms default."
  default     = null
}

variable "log_retention_days" {
  type        = number
  description = "Retention of every log group (Lambdas, Batch jobs, GPU instance, VPC flow log) in days."
  default     = 365
  nullable    = false
}

################################################################################
# Network
################################################################################

variable "vpc_cidr" {
  type        = string
  description = "IPv4 network address of the VPC (/16 to /24). Null: the modules/vpc default."
  default     = null
}

variable "az_count" {
  type        = number
  description = "Availability zones to use (2-6), chosen among those that offer gpu_instance_type. Null: the modules/vpc default."
  default     = null
}

variable "azs" {
  type        = list(string)
  description = "Explicit availability zones (overrides az_count); they must offer gpu_instance_type. Null: the modules/vpc default."
  default     = null
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
  description = "One NAT gateway per zone instead of one shared (with enable_nat_gateway). Null: the modules/vpc default."
  default     = null
}

variable "enable_interface_endpoints" {
  type        = bool
  description = "Without NAT: interface endpoints for EC2, SSM and SNS so the controller and idle stopper reach those APIs from the VPC (about 7.3 USD a month each per zone). Turning them off breaks those two functions unless they have another route. Null: the modules/vpc default."
  default     = null
}

variable "interface_endpoint_az_count" {
  type        = number
  description = "Zones each interface endpoint is placed in (1 keeps the cost at about 22 USD a month for the three). Null: the modules/vpc default."
  default     = null
}

variable "app_allowed_cidrs" {
  type        = list(string)
  description = "IPv4 network addresses (for example a VPN, 10.8.0.0/16) allowed to call the app on port 8000 besides the Lambdas. Empty by default; /0 is refused (plain HTTP). Null: the modules/vpc default."
  default     = null
}

variable "extra_egress_tcp_ports" {
  type        = list(number)
  description = "TCP ports besides 443 the Batch and GPU instances may open outbound (for example 9200 for a self-managed Elasticsearch). Null: the modules/vpc default."
  default     = null
}

variable "enable_flow_log" {
  type        = bool
  description = "VPC flow log to CloudWatch Logs (0.50 USD per GB ingested). Null: the modules/vpc default."
  default     = null
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
  description = "Let terraform destroy delete non-empty buckets with all their objects. Only for throwaway environments. Null: the modules/s3 default."
  default     = null
}

variable "s3_noncurrent_version_expiration_days" {
  type        = number
  description = "Days overwritten or deleted object versions are kept. Null: the modules/s3 default."
  default     = null
}

variable "s3_access_logging" {
  type        = bool
  description = "Server access logs of the data buckets into a separate log bucket. Null: the modules/s3 default."
  default     = null
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
  description = "Images of one event delivery above this count go to a face_embedding Batch job through a manifest, not to the GPU instance (EVENT_BATCH_THRESHOLD). Null: the modules/lambda default."
  default     = null
}

variable "s3_event_video_instance_max_bytes" {
  type        = number
  description = "Videos uploaded under the event prefix up to this size are processed on the GPU instance (POST /videos); larger ones by a Batch video job (VIDEO_INSTANCE_MAX_BYTES). Null: the modules/lambda default."
  default     = null
}

variable "s3_event_filter_suffix" {
  type        = string
  description = "Key suffix that raises events (empty: any), for example .json for manifests. Null: the modules/s3 default."
  default     = null
}

variable "notification_emails" {
  type        = list(string)
  description = "Addresses that receive job results, instance state and dead-letter alarms (each confirms a subscription mail). Null: the modules/sns default."
  default     = null
}

variable "trigger_publisher_principal_arns" {
  type        = list(string)
  description = "IAM principals of other accounts allowed to publish triggers (principals of this account need only IAM permissions). Null: the modules/sns default."
  default     = null
}

################################################################################
# App (the same image serves on the GPU instance and runs the Batch jobs)
################################################################################

variable "container_image" {
  type        = string
  description = "ECR URI of the gpu_app image with a tag or digest, as printed by scripts/build-and-push.sh. A new value replaces the GPU instance and registers new job definition revisions. Required (ml_container_image is accepted as its alias)."
  default     = null
}

variable "ml_container_image" {
  type        = string
  description = "Alias of container_image, for tfvars written for the GPU ML pipeline design. Set one of the two; both only if they are equal."
  default     = null

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
}

variable "api_key_parameter_name" {
  type        = string
  description = "Existing SecureString parameter holding the API key. Null: Terraform creates /<project_name>/<environment>/api-key with a placeholder that you overwrite (README)."
  default     = null
}

variable "model_pack" {
  type        = string
  description = "InsightFace model pack (MODEL_PACK), synced from the models bucket."
  default     = "buffalo_l"
  nullable    = false
}

variable "models_s3_prefix" {
  type        = string
  description = "Prefix of the model packs in the models bucket (MODELS_S3_URI = s3://<models bucket>/<prefix>)."
  default     = "insightface"
  nullable    = false
}

variable "det_size" {
  type        = number
  description = "Face detector input size (DET_SIZE)."
  default     = 640
  nullable    = false
}

variable "execution_provider" {
  type        = string
  description = "onnxruntime execution provider on the GPU instance and in GPU jobs (EXECUTION_PROVIDER): auto, cuda or cpu. CPU jobs always use cpu."
  default     = "auto"
  nullable    = false
}

variable "vector_index" {
  type        = string
  description = "Vector index (VECTOR_INDEX): embedded (on the GPU instance's disk) or elasticsearch (es_hosts)."
  default     = "embedded"
  nullable    = false
}

variable "index_name" {
  type        = string
  description = "Index name (INDEX_NAME)."
  default     = "face_embeddings"
  nullable    = false
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
}

variable "dispatcher_read_prefixes" {
  type        = list(string)
  description = "Key prefixes of the input bucket whose objects the dispatcher may read: the scripts of batch_job triggers (script_key) and the manifests of face_embedding triggers (manifest_key). Keys elsewhere are refused. Empty: the dispatcher reads no object (prefix-based embedding still works)."
  default     = ["jobs/", "manifests/"]
  nullable    = false
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
  description = "GPU jobs on Spot (SPOT_CAPACITY_OPTIMIZED, up to about 70% cheaper, reclaimed jobs are retried) instead of On-Demand. Null: the modules/batch default."
  default     = null
}

variable "ml_cpu_use_spot_instances" {
  type        = bool
  description = "CPU jobs on Spot (SPOT_CAPACITY_OPTIMIZED, reclaimed jobs are retried) instead of On-Demand. Null: the modules/batch default."
  default     = null
}

variable "batch_gpu_instance_types" {
  type        = list(string)
  description = "Instance families or types of the GPU compute environment. Null: the modules/batch default."
  default     = null
}

variable "batch_cpu_instance_types" {
  type        = list(string)
  description = "Instance families or types of the CPU compute environment. Null: the modules/batch default."
  default     = null
}

variable "batch_gpu_max_vcpus" {
  type        = number
  description = "Most vCPUs the GPU environment runs at once (caps the spend; 16 = four g4dn.xlarge)."
  default     = 16
  nullable    = false
}

variable "batch_cpu_max_vcpus" {
  type        = number
  description = "Most vCPUs the CPU environment runs at once (caps the spend)."
  default     = 32
  nullable    = false
}

variable "batch_gpu_image_type" {
  type        = string
  description = "Batch-managed GPU AMI: ECS_AL2023_NVIDIA or ECS_AL2_NVIDIA. Null: the modules/batch default."
  default     = null
}

variable "ml_gpu_job_vcpus" {
  type        = number
  description = "vCPUs of a GPU job (job definition default and DEFAULT_GPU_VCPUS); at most batch_gpu_max_vcpus."
  default     = 4
  nullable    = false
}

variable "ml_gpu_job_memory" {
  type        = number
  description = "Memory of a GPU job in MiB (job definition default and DEFAULT_GPU_MEMORY)."
  default     = 16384
  nullable    = false
}

variable "ml_gpu_job_gpus" {
  type        = number
  description = "GPUs of a GPU job (job definition default and DEFAULT_GPU_GPUS)."
  default     = 1
  nullable    = false
}

variable "ml_cpu_job_vcpus" {
  type        = number
  description = "vCPUs of a CPU job (job definition default and DEFAULT_CPU_VCPUS); at most batch_cpu_max_vcpus."
  default     = 2
  nullable    = false
}

variable "ml_cpu_job_memory" {
  type        = number
  description = "Memory of a CPU job in MiB (job definition default and DEFAULT_CPU_MEMORY)."
  default     = 4096
  nullable    = false
}

variable "batch_job_attempts" {
  type        = number
  description = "Attempts per job (only Spot reclaims are retried). Null: the modules/batch default."
  default     = null
}

variable "batch_job_timeout_seconds" {
  type        = number
  description = "Batch terminates an attempt running longer than this. Null: the modules/batch default."
  default     = null
}

variable "batch_runnable_timeout_seconds" {
  type        = number
  description = "Jobs stuck RUNNABLE this long (no capacity, or too big for any environment) are cancelled with the reason (600-86400). Null: the modules/batch default."
  default     = null
}

variable "job_max_vcpus" {
  type        = number
  description = "Most vCPUs a trigger may ask for per job (MAX_VCPUS). Null: the modules/lambda default."
  default     = null
}

variable "job_max_memory" {
  type        = number
  description = "Most memory in MiB a trigger may ask for per job (MAX_MEMORY). Null: the modules/lambda default."
  default     = null
}

variable "job_max_gpus" {
  type        = number
  description = "Most GPUs a trigger may ask for per job (MAX_GPUS). Null: the modules/lambda default."
  default     = null
}

variable "job_min_memory" {
  type        = number
  description = "Least memory in MiB a job gets (MIN_MEMORY). Null: the modules/lambda default."
  default     = null
}

variable "images_per_child" {
  type        = number
  description = "Images per child job when the dispatcher splits a large input (IMAGES_PER_CHILD). Null: the modules/lambda default."
  default     = null
}

################################################################################
# GPU instance
################################################################################

variable "gpu_instance_type" {
  type        = string
  description = "Type of the GPU instance that serves the API (T4 on g4dn.xlarge is the cheapest NVIDIA option)."
  default     = "g4dn.xlarge"
  nullable    = false
}

variable "gpu_ami_id" {
  type        = string
  description = "AMI of the GPU instance. Null: the latest AWS Deep Learning Base OSS Nvidia Driver GPU AMI (Amazon Linux 2023); later releases do not replace the instance."
  default     = null
}

variable "gpu_root_volume_size" {
  type        = number
  description = "Encrypted root volume of the GPU instance in GiB. Null: the modules/ec2_gpu default."
  default     = null
}

variable "gpu_stop_after_first_boot" {
  type        = bool
  description = "The instance provisions itself on first boot (driver check, image pull, app start) and then stops; the controller starts it on demand. False: it keeps running after the first boot. Null: the modules/ec2_gpu default."
  default     = null
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
}

variable "enable_ssm_session_manager" {
  type        = bool
  description = "Allow shell access to the GPU instance through SSM Session Manager (there is no SSH). Null: the modules/ec2_gpu default."
  default     = null
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
  description = "Lambda architecture: x86_64 or arm64 (arm64 is about 20% cheaper; make package must build for it). Null: the modules/lambda default."
  default     = null
}

variable "lambda_log_level" {
  type        = string
  description = "Log level of the functions (POWERTOOLS_LOG_LEVEL). Null: the modules/lambda default."
  default     = null
}

variable "lambda_tracing_mode" {
  type        = string
  description = "X-Ray tracing of the functions: Active or PassThrough. Null: the modules/lambda default."
  default     = null
}

variable "idle_check_schedule" {
  type        = string
  description = "How often the idle stopper checks the GPU instance (EventBridge rate or cron expression). Null: the modules/lambda default."
  default     = null
}

variable "controller_start_timeout_seconds" {
  type        = number
  description = "How long the controller waits for the instance to run (START_TIMEOUT_SECONDS). Null: the modules/lambda default."
  default     = null
}

variable "controller_health_timeout_seconds" {
  type        = number
  description = "How long the controller waits for the app's /health after a start (HEALTH_TIMEOUT_SECONDS); start + health must fit the controller's 900 s timeout. Null: the modules/lambda default."
  default     = null
}

variable "unreachable_grace_seconds" {
  type        = number
  description = "How long a running instance may fail health checks before the idle stopper stops it anyway (UNREACHABLE_GRACE_SECONDS). Null: the modules/lambda default."
  default     = null
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

variable "s3_event_maximum_concurrency" {
  type        = number
  description = "With enable_s3_event_notifications: most dispatcher invocations the event queue's mapping runs at once (2-1000). Null: no limit but the function's (reserved) concurrency."
  default     = null
}
