"""A small typed asyncio client for the clawsess CLI, for bot authors.

    from clawsess_client import Clawsess, ClawsessError, Busy

    cs = Clawsess()                                   # `clawsess` on PATH, or Clawsess("/path")
    result = await cs.run("telegram:42", "hello")     # one turn, the reply in result.text
    async with cs.stream("telegram:42", "fix it", ask=True) as turn:
        async for event in turn:                      # text, tool, permission, question...
            if event.type == "permission":
                await cs.answer(event.request_id, "allow")
            elif event.type == "question":            # Claude asks: pick an option's label
                await cs.answer(event.request_id, choices=[event.questions[0]["options"][0]["label"]])
    print(turn.result.text)
    # From elsewhere, while that turn runs (each a Turn to iterate as above):
    cs.stream("telegram:42", "also do X", steer=True)        # into the turn in progress
    cs.stream("telegram:42", "stop, do Y", interrupt=True)   # stop it, run this one next
    # A claude you start yourself (the Agent SDK's) waits in the same line:
    async with cs.queue("telegram:42") as place:
        ready = await place.ready(on_queued=lambda n, behind: print(f"#{n} in line"))
        ...  # start claude in ready["cwd"] with CLAWSESS_CLAIM=ready["claim"] in its env

Chat text goes to clawsess on stdin, never on its command line, and clawsess is run with an
argument list, never through a shell. A failure raises ClawsessError with clawsess's exit code
and its message (Busy for exit 75: another surface answers the session). Standard library only.
"""

from __future__ import annotations

import asyncio
import calendar
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Optional, Sequence

__all__ = ["Clawsess", "ClawsessError", "Busy", "Event", "Place", "Result", "Turn", "tool_summary", "topic_text"]

# clawsess's exit code when the session stays busy (EX_TEMPFAIL).
EXIT_BUSY = 75


class ClawsessError(Exception):
    """clawsess failed: `code` is its exit status, `message` what it said (without the
    "clawsess: " prefix), `stderr` all it wrote there."""

    def __init__(self, message: str, code: int = 1, stderr: str = ""):
        super().__init__(message)
        self.message = message
        self.code = code
        self.stderr = stderr


class Busy(ClawsessError):
    """Another surface (a terminal, another chat) answers the session; try again later."""


@dataclass
class Event:
    """One line of `clawsess run --stream`: `type` is "session", "text", "tool",
    "permission", "question", "plan", "queued", "steer", "interrupt" (or a newer kind);
    `data` the whole object (docs/RUN.md, docs/MIDTURN.md)."""

    type: str
    data: dict

    def get(self, name: str, default: Any = None) -> Any:
        return self.data.get(name, default)

    @property
    def text(self) -> str:
        return str(self.data.get("text") or "")

    @property
    def tool(self) -> Optional[str]:
        return self.data.get("tool")

    @property
    def input(self) -> Any:
        return self.data.get("input")

    @property
    def request_id(self) -> Optional[str]:
        return self.data.get("request_id")

    @property
    def questions(self) -> list:
        """A "question" event's questions: [{question, header, options: [{label,
        description}], multi}]."""
        value = self.data.get("questions")
        return [q for q in value if isinstance(q, dict)] if isinstance(value, list) else []

    @property
    def plan(self) -> str:
        """A "plan" event's plan (Markdown)."""
        return str(self.data.get("plan") or "")


@dataclass
class Result:
    """How a turn ended (`clawsess run --json`, or the stream's last line)."""

    text: str
    session_id: Optional[str]
    key: Optional[str]
    is_error: bool
    interrupted: bool
    replaced_session: bool
    raw: dict = field(repr=False)
    # {"from": OLD SESSION, "why": "idle 72h"} when the key's session was past its reset
    # policy and this turn started a new one; else None.
    reset: Optional[dict] = None
    # `steer=True` that went into another run's turn: that run's key (this is its result).
    steered_into: Optional[str] = None

    @classmethod
    def of(cls, obj: dict) -> "Result":
        reset = obj.get("reset")
        return cls(text=str(obj.get("result") or ""), session_id=obj.get("session_id"),
                   key=obj.get("key"), is_error=bool(obj.get("is_error")),
                   interrupted=bool(obj.get("interrupted")),
                   replaced_session=bool(obj.get("replaced_session")), raw=obj,
                   reset=reset if isinstance(reset, dict) else None,
                   steered_into=obj.get("steered_into"))


def error_message(stderr: str, code: int) -> str:
    """The last `clawsess:` line of STDERR (else its last line), without the prefix."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    ours = [line for line in lines if line.startswith("clawsess:")]
    line = (ours or lines or [f"clawsess exited with status {code}"])[-1]
    return line[len("clawsess:"):].strip() if line.startswith("clawsess:") else line


def _raise(code: int, stderr: str, message: Optional[str] = None) -> None:
    message = message or error_message(stderr, code)
    raise (Busy if code == EXIT_BUSY else ClawsessError)(message, code, stderr)


class Turn:
    """A running `clawsess run --stream`: iterate it for its events; `result` is set once
    the iteration ends. Use it as `async with`: leaving early stops the turn."""

    def __init__(self, client: "Clawsess", args: list, text: str):
        self._client, self._args, self._text = client, args, text
        self.proc: Optional[asyncio.subprocess.Process] = None
        self.result: Optional[Result] = None
        self._stderr: Optional[asyncio.Task] = None

    async def start(self) -> "Turn":
        self.proc = await self._client._spawn(self._args)
        self._stderr = asyncio.ensure_future(self.proc.stderr.read())
        try:
            self.proc.stdin.write(self._text.encode())
            await self.proc.stdin.drain()
            self.proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass  # clawsess failed before reading it: its result line says why
        return self

    async def __aenter__(self) -> "Turn":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.terminate()
            await self.proc.wait()
        if self._stderr is not None and not self._stderr.done():
            self._stderr.cancel()

    def terminate(self) -> None:
        """SIGTERM to clawsess: it stops claude, keeps what was said, and frees the session."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()

    async def __aiter__(self) -> AsyncIterator[Event]:
        if self.proc is None:
            await self.start()
        last: Optional[dict] = None
        async for raw in self.proc.stdout:
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(obj, dict):
                continue
            if obj.get("type") == "result":
                last = obj
                continue
            yield Event(str(obj.get("type")), obj)
        code = await self.proc.wait()
        stderr = (await self._stderr).decode(errors="replace")
        if last is None:
            _raise(code, stderr)
        if code != 0 and not last.get("interrupted") and not last.get("result"):
            _raise(code, stderr, last.get("error"))
        self.result = Result.of(last)


class Place:
    """A running `clawsess queue`: a key's turn waiting in the session's line (first come,
    first served with runs and terminals) for a claude you start yourself, then the session
    held for that claude until its prompt takes the turn. Use it as `async with`: leaving
    closes clawsess's stdin, which lets go of a session no claude took (a bot that dies does
    the same), and waits for clawsess to end."""

    def __init__(self, client: "Clawsess", args: list, on_stderr=None):
        self._client, self._args, self._on_stderr = client, args, on_stderr
        self.proc: Optional[asyncio.subprocess.Process] = None
        self._stderr_lines: list = []
        self._stderr: Optional[asyncio.Task] = None
        #: The last line that was not `queued`: `ready`, then `claimed` or `released`.
        self.last: Optional[dict] = None

    async def __aenter__(self) -> "Place":
        self.proc = await self._client._spawn(self._args)
        self._stderr = asyncio.ensure_future(self._read_stderr())
        return self

    async def _read_stderr(self) -> None:
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            self._stderr_lines.append(line)
            if self._on_stderr is not None:
                self._on_stderr(line)

    async def _next(self) -> Optional[dict]:
        while True:
            raw = await self.proc.stdout.readline()
            if not raw:
                return None
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            if isinstance(obj, dict):
                return obj

    async def ready(self, on_queued=None) -> dict:
        """Waits for the session: `on_queued(position, behind)` hears each place in line
        (1: next). Returns the `ready` line ({session_id, cwd, resume, claim, key}); raises
        Busy when the session stayed busy past the wait, ClawsessError on another failure."""
        while True:
            obj = await self._next()
            if obj is None or obj.get("type") == "error":
                code = await self.proc.wait()
                if self._stderr is not None:
                    await self._stderr
                message = obj.get("error") if obj else None
                _raise(code or 1, "\n".join(self._stderr_lines), message)
            if obj.get("type") == "queued":
                if on_queued is not None:
                    on_queued(int(obj.get("position") or 0), str(obj.get("behind") or ""))
                continue
            self.last = obj
            if obj.get("type") == "ready":
                return obj

    async def __aexit__(self, *exc) -> None:
        if self.proc is None:
            return
        try:
            self.proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass
        while True:
            obj = await self._next()
            if obj is None:
                break
            self.last = obj
        await self.proc.wait()
        if self._stderr is not None:
            await self._stderr


class Clawsess:
    """The clawsess executable (`clawsess` on PATH by default), run in `cwd`."""

    def __init__(self, exe: str = "clawsess", cwd: Optional[str] = None,
                 env: Optional[dict] = None):
        found = shutil.which(exe)
        if not found:
            raise ClawsessError(f"clawsess not found: {exe!r} (install it, or give its path)", 127)
        self.exe = os.path.abspath(found)
        self.cwd = cwd
        self.env = env

    async def _spawn(self, args: Sequence[str]) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            self.exe, *args, cwd=self.cwd, env=self.env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)

    async def call(self, *args: str, stdin: str = "") -> str:
        """Runs `clawsess ARGS` with STDIN; its stdout, or ClawsessError."""
        proc = await self._spawn(args)
        out, err = await proc.communicate(stdin.encode())
        if proc.returncode != 0:
            stderr = err.decode(errors="replace")
            message = None
            try:  # --json failures are one document with "error"
                message = json.loads(out).get("error")
            except (ValueError, AttributeError):
                pass
            if "unrecognized subcommand" in stderr:
                message = (f"this clawsess ({self.exe}) has no `{args[0]}` command; "
                           "upgrade clawsess")
            _raise(proc.returncode, stderr, message)
        return out.decode(errors="replace")

    async def call_json(self, *args: str) -> Any:
        return json.loads(await self.call(*args))

    @staticmethod
    def _target_args(command: str, key: str, *, session=None, new=False, cwd=None,
                     wait=None) -> list:
        """COMMAND (`run` or `queue`, which take these alike) for KEY's session, or SESSION,
        or a NEW one working in CWD, waiting WAIT seconds at most while another surface
        answers it."""
        args = [command, "--key", key]
        if session:
            args += ["--session", session]
        if new:
            args.append("--new")
        if cwd:
            args += ["--cwd", cwd]
        if wait is not None:
            args += ["--wait", str(wait)]
        return args

    @classmethod
    def _run_args(cls, key: str, *, cwd=None, new=False, session=None, wait=None, warm=None,
                  images: Sequence[str] = (), extra: Sequence[str] = ()) -> list:
        args = cls._target_args("run", key, session=session, new=new, cwd=cwd, wait=wait)
        if warm is not None:
            args += ["--warm", str(warm)]
        for image in images:
            args += ["--image", image]
        return args + list(extra)

    async def run(self, key: str, text: str, **options) -> Result:
        """One turn of KEY's session with TEXT as the prompt (`clawsess run --json`).
        Options: cwd, new, session, wait, warm, images, extra (more `run` arguments)."""
        args = self._run_args(key, **options) + ["--json"]
        return Result.of(json.loads(await self.call(*args, stdin=text)))

    def stream(self, key: str, text: str, *, ask: bool = False,
               ask_timeout: Optional[float] = None, steer: bool = False,
               interrupt: bool = False, **options) -> Turn:
        """A live turn (`clawsess run --stream`); with ASK, tool calls that need permission
        come as "permission" events, Claude's questions and plans as "question" and "plan"
        events, all answered with `answer`. STEER: TEXT goes into the turn in progress on
        KEY's session when clawsess drives it (a "steer" event says where it went; then that
        turn's events and result follow), else it runs as a turn of its own. INTERRUPT: the
        turn in progress is stopped and TEXT runs next (an "interrupt" event first)."""
        args = self._run_args(key, **options) + ["--stream"]
        if steer:
            args.append("--steer")
        if interrupt:
            args.append("--interrupt")
        if ask:
            args.append("--ask")
            if ask_timeout is not None:
                args += ["--ask-timeout", str(ask_timeout)]
        return Turn(self, args, text)

    def queue(self, key: str, *, wait: Optional[float] = None, cwd: Optional[str] = None,
              session: Optional[str] = None, new: bool = False, hold: Optional[float] = None,
              on_stderr=None) -> Place:
        """`clawsess queue`: wait in line for KEY's turn for a claude you start yourself
        (see Place); `on_stderr(line)` gets what clawsess says while it waits."""
        args = self._target_args("queue", key, session=session, new=new, cwd=cwd,
                                 wait=None if wait is None else max(0, int(wait)))
        if hold is not None:
            args += ["--hold", str(max(1, int(hold)))]
        return Place(self, args, on_stderr)

    async def answer(self, request_id: str, decision: Optional[str] = None,
                     reason: Optional[str] = None, *, choices: Sequence[str] = (),
                     text: Optional[str] = None) -> str:
        """Answers a "permission", "question" or "plan" event; what clawsess said.

        DECISION "allow" or "deny" (with REASON, told to the model): a permission's answer,
        a plan approved or sent back, a question declined. A question: CHOICES (option
        labels: one per question, several for a multi-select one) and/or TEXT (the person's
        own words, for every question no choice answers). A plan: TEXT is what to change.
        REASON and TEXT go to clawsess on stdin, never on its command line."""
        if (decision is None) == (not choices and text is None):
            raise ValueError("answer: give a decision, or choices and/or text")
        if reason is not None and text is not None:
            raise ValueError("answer: a reason goes with a decision, a text without one")
        args = ["answer"]
        for label in choices:
            args.append(f"--choice={label}")
        if text is not None:
            args.append("--text=-")
        if reason:
            args.append("--reason=-")
        args += ["--", request_id] + ([decision] if decision else [])
        return (await self.call(*args, stdin=text if text is not None else (reason or ""))).strip()

    async def stop(self, key: str) -> bool:
        """Interrupts KEY's running turn; False when nothing was running."""
        out = await self.call("stop", "--key", key)
        return not out.startswith("nothing is running")

    async def attach(self, key: str, session: Optional[str] = None) -> dict:
        """Attaches KEY to SESSION (a name, id or prefix; default: the latest terminal one)."""
        return await self.call_json("attach", "--key", key, "--json",
                                    *(["--", session] if session else []))

    async def detach(self, key: str) -> dict:
        return await self.call_json("detach", "--key", key, "--json")

    async def current(self, key: str) -> Optional[dict]:
        """{session_id, key, via} of the session KEY talks to; None when it has none yet."""
        try:
            return await self.call_json("current", "--key", key, "--json")
        except ClawsessError as e:
            if e.message.startswith("no session for key"):
                return None
            raise

    async def list(self, limit: Optional[int] = None) -> list:
        return await self.call_json("list", "--json", *(["--limit", str(limit)] if limit else []))

    async def list_text(self, limit: Optional[int] = None) -> str:
        return await self.call("list", *(["--limit", str(limit)] if limit else []))

    async def topic(self, session: str) -> dict:
        """Where SESSION's conversation stands (`clawsess show --topic --json`)."""
        return (await self.call_json("show", "--topic", "--json", "--", session)).get("topic") or {}

    async def status(self, key: str) -> dict:
        """`clawsess status --key KEY --json`: KEY's session (turns, tokens, busy...), the
        settings its next run gets with where each comes from ("settings"), its reset policy
        ("reset") and next reset ("next_reset"). ClawsessError when KEY has no session yet."""
        return await self.call_json("status", "--key", key, "--json")

    async def set(self, key: str, **settings: str) -> dict:
        """Keeps settings for KEY's runs (`clawsess set --key KEY NAME=VALUE...`): model,
        effort, permission_mode, cwd, warm. Returns every setting of KEY now ({NAME: VALUE});
        ClawsessError for a bad name or value."""
        if not settings:
            raise ValueError("set: give at least one NAME=VALUE")
        pairs = [f"{name}={value}" for name, value in settings.items()]
        return (await self.call_json("set", "--key", key, "--json", "--", *pairs)).get("settings") or {}

    async def get(self, key: str) -> dict:
        """KEY's own settings ({NAME: VALUE}; `clawsess get --key KEY`)."""
        return (await self.call_json("get", "--key", key, "--json")).get("settings") or {}

    async def unset(self, key: str, *names: str) -> dict:
        """Drops settings NAMES of KEY (its runs get the defaults again); returns the rest."""
        if not names:
            raise ValueError("unset: name the settings to drop (model, effort...)")
        return (await self.call_json("unset", "--key", key, "--json", "--", *names)).get("settings") or {}

    async def cool(self, session: Optional[str] = None) -> str:
        """Ends the warm claude of SESSION (default: every warm session)."""
        return await self.call("cool", *(["--", session] if session else []))

    async def forget(self, key: str) -> str:
        """Drops KEY's own session and attachment (its chat or thread is gone)."""
        return await self.call("forget", "--key", key)


# --- words for a chat ------------------------------------------------------------------


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def tool_summary(tool_input, limit=120):
    """A tool call in a few words: Bash's command, a file tool's path, a search's pattern."""
    if not isinstance(tool_input, dict):
        return ""
    for name in ("command", "file_path", "notebook_path", "pattern", "url", "query",
                 "description", "prompt"):
        value = tool_input.get(name)
        if isinstance(value, str) and value.strip():
            return _shorten(" ".join(value.split()), limit)
    return _shorten(json.dumps(tool_input, ensure_ascii=False), limit)


def topic_text(topic):
    """Where a conversation stands (`clawsess show --topic --json`'s topic)."""
    if not topic or not topic.get("last_surface"):
        return "Nothing has been said in it yet."
    prompts = topic.get("prompts") or []
    lines = [f"Last topic: {len(prompts)} prompt{'' if len(prompts) == 1 else 's'}, "
             f"last turn by {topic['last_surface']}{ago(topic.get('at'))}."]
    verbs = {"Edit": "edited", "MultiEdit": "edited", "NotebookEdit": "edited",
             "Write": "wrote", "Bash": "ran"}
    done = []
    for a in (topic.get("actions") or [])[:12]:
        what = a.get("target") or a.get("tool")
        what = f"`{what}`" if a.get("tool") == "Bash" else what
        what = f"{verbs.get(a.get('tool'), '')} {what}".strip()
        what += f" ×{a['count']}" if a.get("count", 1) > 1 else ""
        notes = [f"{a[k]} {k}" for k in ("failed", "denied") if a.get(k)]
        done.append(what + (f" ({', '.join(notes)})" if notes else ""))
    more = len(topic.get("actions") or []) - len(done) + (topic.get("actions_omitted") or 0)
    if more > 0:
        done.append(f"{more} more")
    lines.append("Done: " + ("; ".join(done) if done else "no tool calls") + ".")
    if prompts:
        lines.append("Last prompt: " + _shorten(" ".join((prompts[-1].get("text") or "").split()), 300))
    if topic.get("last_reply"):
        lines.append("Last reply: " + _shorten(" ".join(topic["last_reply"].split()), 600))
    return "\n".join(lines)


def ago(timestamp):
    try:
        then = calendar.timegm(time.strptime(timestamp[:19], "%Y-%m-%dT%H:%M:%S"))
    except (TypeError, ValueError):
        return ""
    secs = max(0, int(time.time() - then))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if secs >= size:
            return f", {secs // size} {unit} ago"
    return f", {secs} s ago"
