"""Stand-in for mini_agent.tools."""

from .base import Tool, ToolResult

__all__ = ["Tool", "ToolResult"]
