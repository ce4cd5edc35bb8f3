"""The sandbox's API errors: what it answers with, as the processor would."""

from __future__ import annotations


class SandboxError(Exception):
    """An API error: HTTP status, machine-readable code, message, and the field at fault."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def not_found(entity: str, entity_id: str) -> SandboxError:
    return SandboxError(404, "not_found", f"{entity} not found: {entity_id}")
