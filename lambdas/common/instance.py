"""The start-on-demand GPU instance as EC2 describes it."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from lambdas.common.aws import client


class InstanceInfo(NamedTuple):
    instance_id: str
    state: str  # pending | running | stopping | stopped | shutting-down | terminated
    instance_type: str
    launch_time: datetime  # EC2 resets it at every start, so it is "running since"
    private_ip: str | None
    # "spot" for a Spot instance (EC2's InstanceLifecycle), else "on-demand".
    market: str = "on-demand"

    @property
    def spot(self) -> bool:
        return self.market == "spot"

    def as_dict(self) -> dict[str, str | None]:
        return {
            "instance_id": self.instance_id,
            "state": self.state,
            "instance_type": self.instance_type,
            "launch_time": self.launch_time.isoformat(),
            "private_ip": self.private_ip,
            "market": self.market,
        }


def describe_instance(instance_id: str) -> InstanceInfo:
    reservations = client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"]
    instance = reservations[0]["Instances"][0]
    return InstanceInfo(
        instance_id=instance_id,
        state=instance["State"]["Name"],
        instance_type=instance["InstanceType"],
        launch_time=instance["LaunchTime"],
        private_ip=instance.get("PrivateIpAddress"),
        market="spot" if instance.get("InstanceLifecycle") == "spot" else "on-demand",
    )
