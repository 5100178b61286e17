#!/usr/bin/env python3
"""A chat bot's turn on the Claude Agent SDK, sharing its sessions through clawsess.

Each chat (surface) has a clawsess key, like ``telegram:123``. For a message from key K:

1. ``clawsess queue --key K`` waits in line for K's session (K's attachment, the global
   attachment, K's own session, or a new one in the bot's working dir), first come, first
   served with ``clawsess run`` and terminals waiting on it, up to ``wait`` seconds
   (``on_queued`` hears the place in line), and then holds the session for this turn's
   claude: it prints the session, its cwd and a claim token.
2. The SDK runs the turn: ``resume=<id>`` and ``cwd=<its cwd>`` (or ``session_id=<new id>``
   for a new session), ``CLAWSESS_KEY=K`` and ``CLAWSESS_CLAIM=<token>`` in claude's env so
   clawsess's hooks know which surface this is and that the session was held for it,
   ``setting_sources`` that load the user's settings (where clawsess's hooks are), and the
   prompt exactly as written (``verbatim_prompts``: a chat user's ``/command`` or ``@file``
   is text). Messages are handed to callbacks as they come. If the bot dies before its
   claude takes the turn, ``clawsess queue``'s stdin closes and the session is let go.
3. If clawsess's prompt-submit hook refused the prompt anyway (``precheck=False``: no
   queue, and another surface had the session), the turn waits and tries again while
   ``wait`` lasts, then answers "busy".

Use it as a module (``await turn("telegram:1", "hello")``) or from a shell::

    python3 examples/sdk_bot.py --key telegram:1 "what did we decide yesterday?"
    python3 examples/sdk_bot.py --key telegram:1          # one turn per line of stdin

Needs Python 3.10+, ``pip install claude-agent-sdk`` (tested with 0.2.185), Claude Code
2.1.248+ (tested with 2.1.328), and clawsess installed with its hooks (``clawsess install``). Standard library, claude-agent-sdk and clawsess_client.py (beside it) only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

try:
    from claude_agent_sdk import (
        AssistantMessage,
        ClaudeAgentOptions,
        ClaudeSDKError,
        CLINotFoundError,
        ProcessError,
        ResultMessage,
        SystemMessage,
        TextBlock,
        ToolUseBlock,
        query,
    )
except ImportError:  # pragma: no cover - told to the user by main()
    query = None  # type: ignore[assignment]

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clawsess_client import Busy, Clawsess, ClawsessError  # noqa: E402

#: The clawsess executable.
CLAWSESS = os.environ.get("CLAWSESS", "clawsess")
#: Exit status for "busy, try again later" (EX_TEMPFAIL, as ``clawsess run``).
EX_BUSY = 75
#: Seconds a turn waits for a session another surface is answering.
DEFAULT_WAIT = 60.0
#: Settings Claude Code loads: the user's (where ``clawsess install`` puts its hooks), the
#: project's and the local ones. ``setting_sources=[]`` would load none, and so run no hook:
#: clawsess would not know about the turn at all.
SETTING_SOURCES = ["user", "project", "local"]
#: What Claude Code (2.1.x, stream-json) reports for a prompt a UserPromptSubmit hook
#: refused: a system message ``{"subtype": "informational", "prompt_submit_outcome":
#: {"kind": ...}}``, with a result that still says ``is_error: false``.
REFUSED_KINDS = ("blocked_by_hook", "stopped_by_hook", "dropped_by_hook")
#: Variables of a surrounding Claude Code session that must not reach the bot's claude
#: (when the bot is started from a Claude Code Bash tool); ``main()`` removes them, as
#: ``clawsess run`` does. (The SDK removes ``CLAUDECODE`` itself.)
INHERITED_SESSION_VARS = ("CLAUDE_CODE_SESSION_ID", "CLAUDE_ENV_FILE", "CLAUDE_PID", "CLAWSESS_SESSION_ID")


@dataclass
class Session:
    """Where a key's messages go, as ``clawsess current --json`` says."""

    id: str
    cwd: str
    via: str  # "key" | "global" | "own"
    name: str | None = None


@dataclass
class Reply:
    """What one turn came to."""

    key: str
    #: The session answered (or that was busy), None if none was reached.
    session_id: str | None
    #: The reply text; on ``busy`` or ``is_error`` what to tell the user.
    text: str
    busy: bool = False
    is_error: bool = False
    #: The turn started a new session.
    new_session: bool = False
    #: Its place in the session's line when it began to wait (1: next), None if it did not.
    queued: int | None = None
    #: Something the operator should know (the turn itself went through).
    warning: str | None = None
    num_turns: int = 0
    total_cost_usd: float | None = None
    #: What streamed by: ``{"type": "text", "text": ...}`` and
    #: ``{"type": "tool_use", "name": ..., "input": ...}``, in order.
    events: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# --- clawsess -------------------------------------------------------------------------


def _client() -> Clawsess:
    try:
        return Clawsess(CLAWSESS)
    except ClawsessError as err:
        raise ClawsessError(f"{err.message}: install clawsess (./install.sh) or set CLAWSESS", err.code) from None


async def resolve(key: str) -> Session | None:
    """K's session (``clawsess current --key K --json``); None when there is none yet."""
    doc = await _client().current(key)
    if doc is None:
        return None
    return Session(id=doc["session_id"], cwd=doc["cwd"], via=doc["via"], name=doc.get("name"))


# --- one turn -------------------------------------------------------------------------

#: Turns of one key go one at a time in this process (a chat's messages keep their order,
#: and its first two messages cannot start two sessions).
_key_locks: dict[str, asyncio.Lock] = {}


@dataclass
class _Call:
    """One call of :func:`turn`: its arguments."""

    key: str
    text: str
    cwd: str | None
    cli_path: str | None
    on_text: Callable[[str], None] | None
    on_tool: Callable[[str, dict[str, Any]], None] | None
    on_status: Callable[[str], None] | None
    on_queued: Callable[[int, str], None] | None
    trusted: bool
    precheck: bool
    options: dict[str, Any]
    deadline: float = 0.0
    #: Its first place in the session's line, if it had to wait.
    queued: int | None = None


async def turn(
    key: str,
    text: str,
    *,
    cwd: str | None = None,
    wait: float = DEFAULT_WAIT,
    cli_path: str | None = None,
    on_text: Callable[[str], None] | None = None,
    on_tool: Callable[[str, dict[str, Any]], None] | None = None,
    on_status: Callable[[str], None] | None = None,
    on_queued: Callable[[int, str], None] | None = None,
    trusted: bool = False,
    precheck: bool = True,
    options: dict[str, Any] | None = None,
) -> Reply:
    """One turn of chat ``key``: ``text`` goes to K's session (a new one in ``cwd``, default
    the current dir, when K has none), and the reply comes back.

    ``on_text(text)`` gets each assistant text as it comes, ``on_tool(name, input)`` each
    tool call, ``on_status(line)`` a line when the turn has to wait, ``on_queued(position,
    behind)`` each place in the session's line (1: next) and who answers it now.

    A session another surface answers is waited for in line (``clawsess queue``) up to
    ``wait`` seconds; past that the reply has ``busy=True``. ``precheck=False`` skips the
    queue: a busy session is then refused by clawsess's prompt-submit hook instead, after
    claude has started, and nothing keeps the bot's place in line.

    The prompt reaches the model exactly as written (``verbatim_prompts``): a chat user's
    ``/attach`` is text, not a command run in the bot's session, and ``@/some/file`` does not
    make Claude Code read that file into the conversation (it would with ``claude -p`` or
    the SDK's default). ``trusted=True``, for a trusted caller, turns that off.

    ``options`` are more ``ClaudeAgentOptions`` fields (``model``, ``permission_mode``,
    ``allowed_tools``, ...); ``cli_path`` is the claude to run (default:
    ``$CLAWSESS_CLAUDE``, else the SDK's own choice).
    """
    if query is None:
        raise ClawsessError("the Python package claude-agent-sdk is not installed (pip install claude-agent-sdk)")
    call = _Call(
        key, text, cwd, cli_path, on_text, on_tool, on_status, on_queued, trusted, precheck, dict(options or {})
    )
    async with _key_locks.setdefault(key, asyncio.Lock()):
        call.deadline = time.monotonic() + max(0.0, wait)
        while True:
            reply = await _attempt(call)
            if not reply.busy or time.monotonic() >= call.deadline:
                return reply
            # Refused by clawsess's hook (another surface took the session after the check,
            # or there was no check): wait for that surface, then try again.
            await asyncio.sleep(0.2)
            call.precheck = True


async def _attempt(call: _Call) -> Reply:
    if not call.precheck:
        session = await resolve(call.key)
        if session is None:
            return await _sdk_turn(call, str(uuid.uuid4()), call.cwd or os.getcwd(), new=True, claim=None)
        return await _sdk_turn(call, session.id, session.cwd, new=False, claim=None)
    left = max(0.0, call.deadline - time.monotonic())

    def said(line: str) -> None:
        if call.on_status and line.strip():
            call.on_status(line.strip())

    def queued(position: int, behind: str) -> None:
        if call.queued is None:
            call.queued = position
        if call.on_queued:
            call.on_queued(position, behind)

    # The place in line, then the session held for this turn's claude until its prompt takes
    # it (or, should this bot die first, until clawsess queue's stdin closes).
    async with _client().queue(call.key, wait=left, cwd=call.cwd or os.getcwd(), on_stderr=said) as place:
        try:
            ready = await place.ready(on_queued=queued)
        except Busy as err:
            return Reply(call.key, None, f"this conversation is busy: {err.message}", busy=True, queued=call.queued)
        return await _sdk_turn(call, ready["session_id"], ready["cwd"], new=not ready["resume"], claim=ready["claim"])


async def _sdk_turn(call: _Call, session_id: str, cwd: str, *, new: bool, claim: str | None) -> Reply:
    """The SDK's turn on ``session_id`` (a new session with that id when ``new``); ``claim``:
    the token of the turn ``clawsess queue`` holds for this claude."""
    key = call.key
    warning = None
    stderr_lines: list[str] = []
    env = {**call.options.get("env", {}), "CLAWSESS_KEY": key}
    if claim is not None:
        # The hooks take the turn clawsess queue holds for this claude (once, and only this one).
        env["CLAWSESS_CLAIM"] = claim
    opts: dict[str, Any] = {
        "cwd": cwd,
        "setting_sources": SETTING_SOURCES,
        "verbatim_prompts": not call.trusted,
        "cli_path": call.cli_path or os.environ.get("CLAWSESS_CLAUDE") or None,
        **call.options,
        # The hooks read CLAWSESS_KEY: this turn is K's (logged for catch-up under K; a new
        # session becomes K's own).
        "env": env,
        "stderr": stderr_lines.append,
    }
    if new:
        # A new session's id is chosen up front, so the reply can name it whatever happens.
        opts["session_id"] = session_id
    else:
        opts["resume"] = session_id
    reply = Reply(key, session_id, "", new_session=new, warning=warning, queued=call.queued)
    texts: list[str] = []
    refused: str | None = None
    answered = False
    result: ResultMessage | None = None
    try:
        async for msg in query(prompt=call.text, options=ClaudeAgentOptions(**opts)):
            if isinstance(msg, AssistantMessage) and msg.parent_tool_use_id is None:
                answered = True
                for block in msg.content:
                    if isinstance(block, TextBlock) and block.text:
                        texts.append(block.text)
                        reply.events.append({"type": "text", "text": block.text})
                        if call.on_text:
                            call.on_text(block.text)
                    elif isinstance(block, ToolUseBlock):
                        reply.events.append({"type": "tool_use", "name": block.name, "input": block.input})
                        if call.on_tool:
                            call.on_tool(block.name, block.input)
            elif isinstance(msg, SystemMessage):
                outcome = msg.data.get("prompt_submit_outcome") or {}
                if outcome.get("kind") in REFUSED_KINDS:
                    refused = str(outcome.get("reason") or "").strip() or "refused by a hook"
            elif isinstance(msg, ResultMessage):
                result = msg
    except CLINotFoundError as err:
        reply.is_error, reply.text = True, f"Claude Code not found: {err}"
        return reply
    except ProcessError as err:
        # A hook may stop claude (a signal) to refuse a prompt, and say why on its stderr.
        said = _clawsess_line(stderr_lines)
        if said and not answered:
            reply.busy, reply.text = True, said
        else:
            reply.is_error = True
            reply.text = f"claude failed: {err}" + (f" ({said})" if said else "")
        return reply
    except ClaudeSDKError as err:
        reply.is_error, reply.text = True, f"Agent SDK error: {err}"
        return reply

    if result is not None:
        reply.session_id = result.session_id or reply.session_id
        reply.num_turns = result.num_turns
        reply.total_cost_usd = result.total_cost_usd
    # Not answered: a hook refused the prompt. Claude Code 2.1.x says so in a system message
    # (the result still says success); older versions only give a result with no turn and
    # no assistant message. A refusal of clawsess's (its lines start with "clawsess") means
    # another surface has the session: busy. Another hook's refusal is an error.
    said = _clawsess_line(stderr_lines)
    not_answered = not answered and (
        said is not None or (result is not None and not result.is_error and result.num_turns == 0)
    )
    if refused is not None or not_answered:
        reason = said or refused or (result.result if result else None) or "refused by a hook"
        if _is_clawsess(reason):
            reply.busy, reply.text = True, reason
        else:
            reply.is_error, reply.text = True, f"the prompt was refused by a hook: {reason}"
        return reply
    if result is None:
        reply.is_error = True
        reply.text = "claude ended without a result" + _tail(stderr_lines)
        return reply
    if result.is_error:
        reply.is_error = True
        reply.text = result.result or "; ".join(result.errors or []) or f"claude reported an error ({result.subtype})"
        return reply
    reply.text = result.result if result.result is not None else "\n".join(texts)
    if reply.new_session:
        # The hooks (SessionStart with CLAWSESS_KEY) make a new session K's own; if they did
        # not, the next message would start yet another session.
        now = await resolve(key)
        if now is None or now.id != reply.session_id:
            reply.warning = (
                f"clawsess did not record session {reply.session_id} as {key}'s own, so the next "
                "message will not continue it: check `clawsess doctor` (the hooks must be installed "
                "and the user's settings loaded; setting_sources=[] turns them off)"
            )
    return reply


def _is_clawsess(line: str) -> bool:
    """A line clawsess wrote: it starts with "clawsess" (or "[clawsess")."""
    return line.strip().lstrip("[").startswith("clawsess")


def _clawsess_line(lines: list[str]) -> str | None:
    """The last line clawsess wrote on claude's stderr (a hook's reason), if any."""
    for line in reversed(lines):
        if _is_clawsess(line):
            return line.strip()
    return None


def _tail(lines: list[str]) -> str:
    text = "\n".join(line.rstrip() for line in lines[-5:]).strip()
    return f": {text}" if text else ""


# --- command line ---------------------------------------------------------------------


def _printable(text: str) -> str:
    """Text for a terminal: control characters other than newline and tab escaped."""
    return "".join(c if c in "\n\t" or (c.isprintable() and c != "\x7f") else f"\\u{{{ord(c):x}}}" for c in text)


def _parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="One turn of a chat key's Claude Code session through the Agent SDK and "
        "clawsess. Without PROMPT: one turn per line of stdin.",
    )
    p.add_argument("--key", required=True, help="the chat's clawsess key, e.g. telegram:123")
    p.add_argument("--cwd", help="working dir of a new session (default: the current dir)")
    p.add_argument("--wait", type=float, default=float(os.environ.get("BOT_WAIT", DEFAULT_WAIT)),
                   help=f"seconds to wait for a busy session (default {DEFAULT_WAIT:.0f}, or $BOT_WAIT)")
    p.add_argument("--claude", help="the claude to run (default: $CLAWSESS_CLAUDE, else the SDK's choice)")
    p.add_argument("--model", help="the model")
    p.add_argument("--permission-mode", help="default, acceptEdits, plan, bypassPermissions, ...")
    p.add_argument("--trusted", action="store_true",
                   help="the prompt is the operator's, not a chat user's: /commands run, @files are read")
    p.add_argument("--no-precheck", action="store_true",
                   help="skip clawsess queue before the turn (no place in line: clawsess's hook refuses a busy session)")
    p.add_argument("--json", action="store_true", help="print one JSON object per turn instead of streaming text")
    p.add_argument("prompt", nargs="*", help="the prompt (words joined by spaces)")
    return p.parse_args(argv)


async def _main(args: argparse.Namespace) -> int:
    options: dict[str, Any] = {}
    if args.model:
        options["model"] = args.model
    if args.permission_mode:
        options["permission_mode"] = args.permission_mode

    def show_text(text: str) -> None:
        print(_printable(text), flush=True)

    def show_tool(name: str, tool_input: dict[str, Any]) -> None:
        print(_printable(f"[{name}] {json.dumps(tool_input, ensure_ascii=False)[:200]}"), file=sys.stderr, flush=True)

    def show_status(line: str) -> None:
        print(f"sdk_bot: {_printable(line)}", file=sys.stderr, flush=True)

    def show_queued(position: int, behind: str) -> None:
        show_status(f"queued: #{position} in line for this conversation, which {behind} is answering now")

    async def one(text: str) -> int:
        try:
            reply = await turn(
                args.key,
                text,
                cwd=args.cwd,
                wait=args.wait,
                cli_path=args.claude,
                on_text=None if args.json else show_text,
                on_tool=None if args.json else show_tool,
                on_status=show_status,
                on_queued=show_queued,
                trusted=args.trusted,
                precheck=not args.no_precheck,
                options=options,
            )
        except ClawsessError as err:
            if args.json:
                print(json.dumps({"key": args.key, "error": str(err), "is_error": True, "busy": False}), flush=True)
            else:
                print(f"sdk_bot: {_printable(str(err))}", file=sys.stderr)
            return 1
        if args.json:
            print(json.dumps(reply.to_json(), ensure_ascii=False), flush=True)
        elif reply.busy:
            print(f"busy: {_printable(reply.text)}", file=sys.stderr, flush=True)
        elif reply.is_error:
            print(f"error: {_printable(reply.text)}", file=sys.stderr, flush=True)
        if reply.warning and not args.json:
            print(f"warning: {_printable(reply.warning)}", file=sys.stderr, flush=True)
        return EX_BUSY if reply.busy else 1 if reply.is_error else 0

    if args.prompt:
        return await one(" ".join(args.prompt))
    status = 0
    for line in sys.stdin:
        line = line.rstrip("\n")
        if line.strip():
            status = await one(line)
    return status


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    for name in INHERITED_SESSION_VARS:
        os.environ.pop(name, None)
    if query is None:
        print("sdk_bot: the Python package claude-agent-sdk is not installed (pip install claude-agent-sdk)",
              file=sys.stderr)
        return 1
    try:
        return asyncio.run(_main(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
