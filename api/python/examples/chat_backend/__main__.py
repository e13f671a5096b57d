"""Run the reference chat backend: ``python3 -m chat_backend``.

The daemon's socket is ``--socket``, else ``$SANDBOXD_SOCKET``, else
``./var/run/sandboxd.sock`` (``make run``'s) when it exists, else
``/run/sandboxd.sock``. The agent (``--agent``):

- ``mini-agent``: Mini-Agent's ``Agent`` with its ``LLMClient``, configured by
  ``MINI_AGENT_API_KEY`` (required), ``MINI_AGENT_PROVIDER`` (anthropic or
  openai), ``MINI_AGENT_API_BASE`` and ``MINI_AGENT_MODEL`` (Mini-Agent's
  defaults when unset);
- ``scripted``: the stand-in that writes and runs a script making
  ``report.pdf`` from each message — no model needed;
- ``auto`` (the default): mini-agent when Mini-Agent is installed and
  ``MINI_AGENT_API_KEY`` is set, scripted otherwise.
"""

import argparse
import logging
import os
import sys

import uvicorn

import sandboxd
from sandboxd import miniagent

from .agents import MiniAgentFactory, ScriptedAgentFactory
from .app import create_app


def default_socket() -> str:
    if os.environ.get("SANDBOXD_SOCKET"):
        return os.environ["SANDBOXD_SOCKET"]
    dev = os.path.join("var", "run", "sandboxd.sock")
    return dev if os.path.exists(dev) else "/run/sandboxd.sock"


def mini_agent_llm():
    """Mini-Agent's LLMClient from the MINI_AGENT_* variables."""
    from mini_agent.llm import LLMClient
    from mini_agent.schema import LLMProvider

    kwargs = {"api_key": os.environ["MINI_AGENT_API_KEY"]}
    if os.environ.get("MINI_AGENT_PROVIDER"):
        kwargs["provider"] = LLMProvider(os.environ["MINI_AGENT_PROVIDER"])
    if os.environ.get("MINI_AGENT_API_BASE"):
        kwargs["api_base"] = os.environ["MINI_AGENT_API_BASE"]
    if os.environ.get("MINI_AGENT_MODEL"):
        kwargs["model"] = os.environ["MINI_AGENT_MODEL"]
    return LLMClient(**kwargs)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m chat_backend", description=__doc__.split("\n\n")[0])
    p.add_argument("--socket", default=default_socket(), help="the daemon's socket (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--agent", choices=("auto", "mini-agent", "scripted"), default="auto")
    args = p.parse_args(argv)
    log = logging.getLogger("chat_backend")  # uvicorn logs its own part
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)

    kind = args.agent
    if kind == "auto":
        kind = "mini-agent" if miniagent.MINI_AGENT and os.environ.get("MINI_AGENT_API_KEY") else "scripted"
    if kind == "mini-agent":
        if not os.environ.get("MINI_AGENT_API_KEY"):
            p.error("--agent mini-agent needs MINI_AGENT_API_KEY")
        factory = MiniAgentFactory(mini_agent_llm())
    else:
        factory = ScriptedAgentFactory()
    log.info("agent %s, daemon at %s", kind, args.socket)

    client = sandboxd.Client(args.socket)
    client.info()  # fail now, clearly, when the daemon is not there
    uvicorn.run(create_app(client, factory), host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
