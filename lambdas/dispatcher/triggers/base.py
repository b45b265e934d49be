"""What every trigger is: a kind of work a message can ask for."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, NamedTuple

from lambdas.common.messages import TriggerMessage
from lambdas.dispatcher.config import DispatcherConfig


class DispatchContext(NamedTuple):
    config: DispatcherConfig
    # Same for every delivery of one message: names jobs and output prefixes deterministically.
    idempotency_key: str
    message_id: str


class BaseTrigger(ABC):
    """Subclasses validate `message.data` in `__init__` (raising InvalidMessageError, before any AWS
    call) and do the work in `execute()`, returning a JSON-serialisable result.

    `execute()` lets AWS errors propagate: the dispatcher treats them as transient and retries; only
    InvalidMessageError (the message's own fault) goes to the dead-letter path.
    """

    trigger_type: ClassVar[str]

    def __init__(self, message: TriggerMessage, context: DispatchContext) -> None:
        self.message = message
        self.context = context

    @abstractmethod
    def execute(self) -> dict[str, Any]:
        """Do the work once; the dispatcher guarantees one call per message (idempotency)."""
