"""Stand-in for the result type of mini_agent/tools/bash_tool.py: content is
always formatted from the other fields. Mini-Agent does it in a pydantic v2
model_validator; pydantic v1 (Debian bookworm's) formats it in __init__."""

from typing import Optional

import pydantic

from .base import ToolResult


def _format(stdout: str, stderr: str, bash_id: Optional[str], exit_code: int) -> str:
    output = ""
    if stdout:
        output += stdout
    if stderr:
        output += f"\n[stderr]:\n{stderr}"
    if bash_id:
        output += f"\n[bash_id]:\n{bash_id}"
    if exit_code:
        output += f"\n[exit_code]:\n{exit_code}"
    return output or "(no output)"


if hasattr(pydantic, "model_validator"):

    class BashOutputResult(ToolResult):
        stdout: str
        stderr: str
        exit_code: int
        bash_id: Optional[str] = None

        @pydantic.model_validator(mode="after")
        def format_content(self) -> "BashOutputResult":
            self.content = _format(self.stdout, self.stderr, self.bash_id, self.exit_code)
            return self

else:

    class BashOutputResult(ToolResult):  # type: ignore[no-redef]
        stdout: str
        stderr: str
        exit_code: int
        bash_id: Optional[str] = None

        def __init__(self, **data):
            super().__init__(**data)
            self.content = _format(self.stdout, self.stderr, self.bash_id, self.exit_code)
