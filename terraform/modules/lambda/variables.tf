variable "name_prefix" {
  type        = string
  description = "Prefix of every name (<project>-<environment>)."
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,38}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-40 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "build_dir" {
  type        = string
  description = "Folder holding dispatcher.zip, controller.zip, monitor.zip and idle_stopper.zip (filled by make package)."
  nullable    = false
}

variable "architecture" {
  type        = string
  description = "Instruction set of the functions: x86_64 or arm64 (must match how make package built the dependencies)."
  default     = "x86_64"
  nullable    = false

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "log_level" {
  type        = string
  description = "Log level of the handlers (POWERTOOLS_LOG_LEVEL)."
  default     = "INFO"
  nullable    = false

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING, ERROR or CRITICAL."
  }
}

variable "tracing_mode" {
  type        = string
  description = "X-Ray tracing of the functions: Active (sampled traces; free tier covers light use) or PassThrough."
  default     = "Active"
  nullable    = false

  validation {
    condition     = contains(["Active", "PassThrough"], var.tracing_mode)
    error_message = "tracing_mode must be Active or PassThrough."
  }
}

variable "memory_size" {
  type        = object({ dispatcher = number, controller = number, monitor = number, idle_stopper = number })
  description = "Memory of each function in MB."
  default     = { dispatcher = 512, controller = 256, monitor = 256, idle_stopper = 256 }
  nullable    = false

  validation {
    condition     = alltrue([for size in values(var.memory_size) : size >= 128 && size <= 10240 && floor(size) == size])
    error_message = "Every memory_size must be a whole number of MB from 128 to 10240."
  }
}

variable "timeout" {
  type        = object({ dispatcher = number, controller = number, monitor = number, idle_stopper = number })
  description = "Timeout of each function in seconds. The controller's must cover start_timeout_seconds + health_timeout_seconds."
  default     = { dispatcher = 300, controller = 900, monitor = 60, idle_stopper = 120 }
  nullable    = false

  validation {
    condition     = alltrue([for seconds in values(var.timeout) : seconds >= 1 && seconds <= 900 && floor(seconds) == seconds])
    error_message = "Every timeout must be a whole number of seconds from 1 to 900."
  }
}

variable "reserved_concurrent_executions" {
  type        = map(number)
  description = "Reserved concurrency by function key (dispatcher, controller, monitor, idle_stopper); missing keys are unreserved. Reserving needs an account concurrency quota above 10 plus the reservations."
  default     = {}
  nullable    = false

  validation {
    condition = alltrue([
      for key, value in var.reserved_concurrent_executions :
      contains(["dispatcher", "controller", "monitor", "idle_stopper"], key) && value >= -1 && floor(value) == value
    ])
    error_message = "reserved_concurrent_executions keys must be dispatcher, controller, monitor or idle_stopper, values whole numbers (-1 = unreserved)."
  }
}

variable "async_retry_attempts" {
  type        = object({ dispatcher = number, controller = number, monitor = number, idle_stopper = number })
  description = "Retries Lambda makes of a failed asynchronous invocation (0-2) before sending it to the function's dead-letter queue."
  default     = { dispatcher = 2, controller = 1, monitor = 2, idle_stopper = 0 }
  nullable    = false

  validation {
    condition     = alltrue([for attempts in values(var.async_retry_attempts) : attempts >= 0 && attempts <= 2 && floor(attempts) == attempts])
    error_message = "Every async_retry_attempts value must be 0, 1 or 2."
  }
}

variable "async_max_event_age_seconds" {
  type        = number
  description = "Oldest asynchronous event Lambda still processes (60-21600 s); older ones go to the dead-letter queue."
  default     = 3600
  nullable    = false

  validation {
    condition     = var.async_max_event_age_seconds >= 60 && var.async_max_event_age_seconds <= 21600 && floor(var.async_max_event_age_seconds) == var.async_max_event_age_seconds
    error_message = "async_max_event_age_seconds must be a whole number from 60 to 21600."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the function log groups in days (a value CloudWatch Logs accepts)."
  default     = 365
  nullable    = false

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653)."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key for the environment variables and log groups; every role may use it (encrypted topics, queues, parameters, objects). Null: AWS-managed keys."
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be null or a KMS key ARN."
  }
}

variable "subnet_ids" {
  type        = list(string)
  description = "Subnets of the controller and idle stopper (they reach the app on the instance's private address)."
  nullable    = false

  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "subnet_ids must list at least one subnet."
  }
}

variable "security_group_ids" {
  type        = list(string)
  description = "Security groups of the controller and idle stopper."
  nullable    = false

  validation {
    condition     = length(var.security_group_ids) > 0
    error_message = "security_group_ids must list at least one security group."
  }
}

variable "input_bucket_name" {
  type        = string
  description = "Input bucket (ML_INPUT_BUCKET)."
  nullable    = false
}

variable "input_bucket_arn" {
  type        = string
  description = "ARN of the input bucket (the dispatcher lists it and reads manifests)."
  nullable    = false
}

variable "input_read_prefixes" {
  type        = list(string)
  description = "Key prefixes of the input bucket the dispatcher may read objects under (scripts and manifests), each ending with a slash. Empty: none."
  default     = ["jobs/", "manifests/"]
  nullable    = false

  validation {
    condition     = alltrue([for prefix in var.input_read_prefixes : can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*/$", prefix))])
    error_message = "input_read_prefixes must be key prefixes ending with a slash and without a leading one, for example jobs/."
  }
}

variable "s3_event_prefix" {
  type        = string
  description = "Key prefix of the input bucket's S3 event notifications (S3_EVENT_PREFIX): objects outside it are dead-lettered."
  default     = "incoming/"
  nullable    = false
}

variable "event_batch_threshold" {
  type        = number
  description = "Images of one event delivery above this count go to a face_embedding Batch job (EVENT_BATCH_THRESHOLD)."
  default     = 200
  nullable    = false

  validation {
    condition     = var.event_batch_threshold >= 0 && floor(var.event_batch_threshold) == var.event_batch_threshold
    error_message = "event_batch_threshold must be a whole number, 0 or more."
  }
}

variable "video_instance_max_bytes" {
  type        = number
  description = "Videos up to this size go to the GPU instance, larger ones to a Batch video job (VIDEO_INSTANCE_MAX_BYTES)."
  default     = 209715200
  nullable    = false

  validation {
    condition     = var.video_instance_max_bytes >= 0 && floor(var.video_instance_max_bytes) == var.video_instance_max_bytes
    error_message = "video_instance_max_bytes must be a whole number of bytes, 0 or more."
  }
}

variable "output_bucket_name" {
  type        = string
  description = "Output bucket (ML_OUTPUT_BUCKET, passed on to jobs)."
  nullable    = false
}

variable "job_queue_names" {
  type        = object({ gpu = string, cpu = string })
  description = "Names of the GPU and CPU job queues (GPU_JOB_QUEUE, CPU_JOB_QUEUE)."
  nullable    = false
}

variable "job_queue_arns" {
  type        = object({ gpu = string, cpu = string })
  description = "ARNs of the GPU and CPU job queues (SubmitJob permission, EventBridge filter)."
  nullable    = false
}

variable "job_definition_names" {
  type = object({
    script_runner_gpu  = string
    script_runner_cpu  = string
    face_embedding_gpu = string
    face_embedding_cpu = string
  })
  description = "Names of the four job definitions (the dispatcher submits by name, so the latest revision runs)."
  nullable    = false
}

variable "job_definition_arn_prefixes" {
  type = object({
    script_runner_gpu  = string
    script_runner_cpu  = string
    face_embedding_gpu = string
    face_embedding_cpu = string
  })
  description = "ARNs without revision of the four job definitions (SubmitJob on every revision)."
  nullable    = false
}

variable "gpu_job_vcpus" {
  type        = number
  description = "Default vCPUs of a GPU job (DEFAULT_GPU_VCPUS)."
  default     = 4
  nullable    = false
}

variable "gpu_job_memory" {
  type        = number
  description = "Default memory of a GPU job in MiB (DEFAULT_GPU_MEMORY)."
  default     = 16384
  nullable    = false
}

variable "gpu_job_gpus" {
  type        = number
  description = "Default GPUs of a GPU job (DEFAULT_GPU_GPUS)."
  default     = 1
  nullable    = false
}

variable "cpu_job_vcpus" {
  type        = number
  description = "Default vCPUs of a CPU job (DEFAULT_CPU_VCPUS)."
  default     = 2
  nullable    = false
}

variable "cpu_job_memory" {
  type        = number
  description = "Default memory of a CPU job in MiB (DEFAULT_CPU_MEMORY)."
  default     = 4096
  nullable    = false
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

variable "gpu_compute_max_vcpus" {
  type        = number
  description = "maxvCpus of the GPU compute environment (GPU_COMPUTE_MAX_VCPUS): the dispatcher refuses GPU jobs asking for more."
  default     = 16
  nullable    = false
}

variable "cpu_compute_max_vcpus" {
  type        = number
  description = "maxvCpus of the CPU compute environment (CPU_COMPUTE_MAX_VCPUS): the dispatcher refuses CPU jobs asking for more."
  default     = 32
  nullable    = false
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
  description = "Images per child job when the dispatcher splits a large input into an array (IMAGES_PER_CHILD)."
  default     = 1000
  nullable    = false

  validation {
    condition     = var.images_per_child >= 1 && floor(var.images_per_child) == var.images_per_child
    error_message = "images_per_child must be a whole number of at least 1."
  }
}

variable "idempotency_table_name" {
  type        = string
  description = "DynamoDB table of the dispatcher's idempotency records (IDEMPOTENCY_TABLE)."
  nullable    = false
}

variable "idempotency_table_arn" {
  type        = string
  description = "ARN of the idempotency table."
  nullable    = false
}

variable "trigger_dlq_url" {
  type        = string
  description = "URL of the trigger DLQ: the dispatcher sends malformed messages there itself (DEAD_LETTER_QUEUE_URL)."
  nullable    = false
}

variable "trigger_dlq_arn" {
  type        = string
  description = "ARN of the trigger DLQ: dead-letter queue of the dispatcher and the controller."
  nullable    = false
}

variable "monitor_dlq_arn" {
  type        = string
  description = "ARN of the monitor DLQ: dead-letter queue of the monitor and idle stopper and of their EventBridge targets."
  nullable    = false
}

variable "notifications_topic_arn" {
  type        = string
  description = "Notifications topic (NOTIFICATIONS_TOPIC_ARN)."
  nullable    = false
}

variable "gpu_instance_id" {
  type        = string
  description = "ID of the GPU instance (GPU_INSTANCE_ID)."
  nullable    = false
}

variable "gpu_instance_arn" {
  type        = string
  description = "ARN of the GPU instance (start/stop permissions)."
  nullable    = false
}

variable "app_port" {
  type        = number
  description = "Port of the app on the GPU instance (APP_PORT)."
  default     = 8000
  nullable    = false

  validation {
    condition     = var.app_port >= 1 && var.app_port <= 65535 && floor(var.app_port) == var.app_port
    error_message = "app_port must be a whole number from 1 to 65535."
  }
}

variable "api_key_parameter_name" {
  type        = string
  description = "SecureString parameter holding the API key (API_KEY_PARAMETER)."
  nullable    = false
}

variable "api_key_parameter_arn" {
  type        = string
  description = "ARN of the API key parameter."
  nullable    = false
}

variable "start_timeout_seconds" {
  type        = number
  description = "How long the controller waits for the instance to run (START_TIMEOUT_SECONDS)."
  default     = 300
  nullable    = false

  validation {
    condition     = var.start_timeout_seconds >= 30 && floor(var.start_timeout_seconds) == var.start_timeout_seconds
    error_message = "start_timeout_seconds must be a whole number of at least 30."
  }
}

variable "health_timeout_seconds" {
  type        = number
  description = "How long the controller waits for the app's /health after the start (HEALTH_TIMEOUT_SECONDS)."
  default     = 600
  nullable    = false

  validation {
    condition     = var.health_timeout_seconds >= 30 && floor(var.health_timeout_seconds) == var.health_timeout_seconds
    error_message = "health_timeout_seconds must be a whole number of at least 30."
  }

  validation {
    condition     = var.start_timeout_seconds + var.health_timeout_seconds <= var.timeout.controller
    error_message = "start_timeout_seconds + health_timeout_seconds must fit the controller's timeout (timeout.controller, 900 s at most)."
  }
}

variable "gpu_instance_type" {
  type        = string
  description = "Preferred type of the GPU instance; with fallback_instance_types, the types the controller may switch the instance between."
  default     = "g4dn.xlarge"
  nullable    = false
}

variable "fallback_instance_types" {
  type        = list(string)
  description = "Instance types the controller may switch the stopped instance to when the preferred one has no capacity (FALLBACK_INSTANCE_TYPES); empty: none, and no permission to change the type."
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for type in var.fallback_instance_types : can(regex("^[a-z0-9-]+\\.[a-z0-9]+$", type))])
    error_message = "fallback_instance_types must be instance types such as g5.xlarge."
  }
}

variable "auto_shutdown_idle_time" {
  type        = number
  description = "Idle seconds after which the idle stopper stops the instance (AUTO_SHUTDOWN_IDLE_TIME)."
  default     = 3600
  nullable    = false

  validation {
    condition     = var.auto_shutdown_idle_time >= 0 && floor(var.auto_shutdown_idle_time) == var.auto_shutdown_idle_time
    error_message = "auto_shutdown_idle_time must be a whole number of seconds, 0 or more."
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

variable "idle_check_schedule" {
  type        = string
  description = "EventBridge schedule of the idle stopper, rate(...) or cron(...)."
  default     = "rate(5 minutes)"
  nullable    = false

  validation {
    condition     = can(regex("^(rate\\([1-9][0-9]* (minute|minutes|hour|hours|day|days)\\)|cron\\(.+\\))$", var.idle_check_schedule))
    error_message = "idle_check_schedule must be an EventBridge rate(...) or cron(...) expression."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource."
  default     = {}
  nullable    = false
}
