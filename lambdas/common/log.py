"""The one structured JSON logger of every function (service name from POWERTOOLS_SERVICE_NAME)."""

from __future__ import annotations

from aws_lambda_powertools import Logger

logger = Logger(utc=True)
