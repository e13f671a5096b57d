"""Stand-in for mini_agent/agent.py: the constructor's workspace handling and
the tool-calling loop of Agent.run, without logging, token counting or
summaries."""

import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Any, List

from .tools.base import Tool, ToolResult


class Agent:
    def __init__(
        self,
        llm_client: Any,
        system_prompt: str,
        tools: List[Tool],
        max_steps: int = 50,
        workspace_dir: str = "./workspace",
        token_limit: int = 80000,
    ):
        self.llm = llm_client
        self.tools = {tool.name: tool for tool in tools}
        self.max_steps = max_steps
        self.workspace_dir = Path(workspace_dir)
        # As Mini-Agent: the directory is created on the host, and the
        # prompt names its absolute path unless it has such a section.
        self.workspace_dir.mkdir(parents=True, exist_ok=True)
        if "Current Workspace" not in system_prompt:
            system_prompt += (
                f"\n\n## Current Workspace\nYou are currently working in: `{self.workspace_dir.absolute()}`\n"
                "All relative paths will be resolved relative to this directory."
            )
        self.system_prompt = system_prompt
        self.messages = [SimpleNamespace(role="system", content=system_prompt)]

    def add_user_message(self, content: str) -> None:
        self.messages.append(SimpleNamespace(role="user", content=content))

    async def run(self) -> str:
        for _ in range(self.max_steps):
            response = await self.llm.generate(messages=self.messages, tools=list(self.tools.values()))
            self.messages.append(
                SimpleNamespace(role="assistant", content=response.content, tool_calls=response.tool_calls)
            )
            if not response.tool_calls:
                return response.content
            for call in response.tool_calls:
                name, arguments = call.function.name, call.function.arguments
                if name not in self.tools:
                    result = ToolResult(success=False, content="", error=f"Unknown tool: {name}")
                else:
                    try:
                        result = await self.tools[name].execute(**arguments)
                    except Exception as e:
                        result = ToolResult(
                            success=False,
                            content="",
                            error=f"Tool execution failed: {type(e).__name__}: {e}\n\nTraceback:\n{traceback.format_exc()}",
                        )
                self.messages.append(
                    SimpleNamespace(
                        role="tool",
                        content=result.content if result.success else f"Error: {result.error}",
                        tool_call_id=call.id,
                        name=name,
                    )
                )
        return f"Task couldn't be completed after {self.max_steps} steps."
