"""Stand-in for mini_agent/tools/base.py: the result model and the tool base
class, with Mini-Agent's fields and methods."""

from typing import Any, Dict, Optional

from pydantic import BaseModel


class ToolResult(BaseModel):
    """Tool execution result."""

    success: bool
    content: str = ""
    error: Optional[str] = None


class Tool:
    """Base class for all tools."""

    @property
    def name(self) -> str:
        raise NotImplementedError

    @property
    def description(self) -> str:
        raise NotImplementedError

    @property
    def parameters(self) -> Dict[str, Any]:
        raise NotImplementedError

    async def execute(self, *args: Any, **kwargs: Any) -> ToolResult:
        raise NotImplementedError

    def to_schema(self) -> Dict[str, Any]:
        return {"name": self.name, "description": self.description, "input_schema": self.parameters}

    def to_openai_schema(self) -> Dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }
