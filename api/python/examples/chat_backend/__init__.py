"""A reference chat backend over sandboxd: the design's three routes in
FastAPI (:mod:`chat_backend.app`), with a pluggable agent
(:mod:`chat_backend.agents`): Mini-Agent's ``Agent`` with the sandboxed
tools, or a scripted stand-in. Run it with ``python3 -m chat_backend``
(see ../README.md)."""

from .agents import MiniAgentFactory, ScriptedAgentFactory
from .app import create_app

__all__ = ["create_app", "MiniAgentFactory", "ScriptedAgentFactory"]
