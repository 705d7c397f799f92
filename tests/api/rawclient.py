"""A raw line-level socket client for sending malformed input."""

import json
import socket
from pathlib import Path


class Raw:
    def __init__(self, path: Path, timeout=5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.file = self.sock.makefile("rb")

    def send_line(self, data: bytes | str):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data + b"\n")

    def send(self, obj):
        self.send_line(json.dumps(obj))

    def recv(self) -> dict | None:
        """The next message that is not a `state` notification; None at end of stream."""
        while True:
            line = self.file.readline()
            if not line:
                return None
            msg = json.loads(line)
            if msg.get("method") == "state":
                continue
            return msg

    def request(self, obj) -> dict:
        self.send(obj)
        return self.recv()

    def close(self):
        self.file.close()
        self.sock.close()
