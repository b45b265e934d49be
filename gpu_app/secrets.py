"""Secrets by name from AWS SSM Parameter Store or Secrets Manager, never from code or state."""

from __future__ import annotations


def fetch_secret(name: str, region: str | None = None) -> str:
    """The raw value of a secret named by reference.

    `secretsmanager:<id>` or a Secrets Manager ARN reads Secrets Manager; anything else is an SSM
    parameter name, read with decryption (SecureString).
    """
    import boto3  # deferred: only deployments that name a secret pay for the import

    if name.startswith("secretsmanager:") or ":secretsmanager:" in name:
        client = boto3.client("secretsmanager", region_name=region)
        return str(client.get_secret_value(SecretId=name.removeprefix("secretsmanager:"))["SecretString"])
    client = boto3.client("ssm", region_name=region)
    return str(client.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"])
