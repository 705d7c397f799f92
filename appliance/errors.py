"""Errors a command can fail with, mapped one to one onto JSON-RPC error codes (docs/protocol.md).

A command that raises one of these has changed nothing.
"""

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
NOT_ALLOWED = -32001
FAULT_LATCHED = -32002
PIN_REQUIRED = -32003
CONDITION_PRESENT = -32004
TOO_MANY_REQUESTS = -32005


class CommandError(Exception):
    """A request the appliance refuses, with a message a person can read."""

    def __init__(self, code: int, message: str, data: dict | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
