#!/usr/bin/env python3
"""A small Telegram bot that talks to Claude Code through clawsess.

Each chat (and each forum topic) is one clawsess surface key, telegram:<chat>[:<topic>],
so every chat keeps its own durable Claude Code session, and `/attach NAME` lets a chat
continue a session that was started in a terminal.

A turn is live (`clawsess run --stream --ask`): one "working..." message shows the tools
Claude calls as it goes, a tool call that needs permission becomes a message with Allow /
Deny buttons, `/stop` stops the chat's turn, and a photo goes to Claude with its caption.

Python 3 standard library only. Configuration (environment):

  TELEGRAM_BOT_TOKEN  the bot's token from @BotFather (required)
  ALLOWED_CHATS       comma-separated chat ids that may use the bot; others are refused
                      (strongly recommended: whoever can message the bot drives Claude Code)
  BOT_CWD             working directory of new sessions (default: the current dir)
  CLAWSESS            the clawsess executable (default: clawsess on PATH)
  TELEGRAM_API_URL    Bot API base URL (default https://api.telegram.org)
  BOT_STATE           state file: update offset and pending /new (default
                      ~/.local/state/clawsess/telegram-bot-<bot id>.json)
  BOT_POLL_TIMEOUT    getUpdates long-poll timeout in seconds (default 50)
  BOT_WAIT            seconds a turn waits while another surface answers the session
                      before giving up as busy (default 60)
  BOT_MAX_PARALLEL    turns running at once across all chats (default 4)
  BOT_STOP_GRACE      seconds running turns may finish after SIGTERM/SIGINT (default 10)
  BOT_RUN_ARGS        extra arguments for `clawsess run`, split like a shell would
                      (e.g. "-A --permission-mode -A acceptEdits"); operator config only
  BOT_WARM            how long a chat's claude stays up after its turn, so that the next
                      message skips starting Claude Code (`clawsess run --warm`; default 10m;
                      0 or off: every turn starts claude)
  BOT_ASK             1 (default): tool calls that need permission get Allow / Deny
                      buttons; 0: they are denied, as in `claude -p`
  BOT_ASK_TIMEOUT     seconds a permission request waits for a button (default 300)
  BOT_EDIT_INTERVAL   least seconds between two edits of a progress message (default 1.5;
                      Telegram allows about one edit a second per chat)

Run: TELEGRAM_BOT_TOKEN=... ALLOWED_CHATS=123456 python3 telegram_bot.py
"""

import calendar
import html
import json
import logging
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

# Telegram's limit on one message, in UTF-16 code units.
TELEGRAM_LIMIT = 4096
# `clawsess run` exits with this when the session stays busy (EX_TEMPFAIL).
# Largest photo passed on (clawsess takes images up to 5 MB).
PHOTO_LIMIT = 5 * 1024 * 1024
# A chat's worker thread ends after this many idle seconds (a new one starts on demand).
WORKER_IDLE = 120.0

BUSY_TEXT = ("this conversation is busy in another place (terminal or another chat); "
             "try again in a moment")
STOPPING_TEXT = ("the bot is shutting down, so this message was not answered; "
                 "send it again in a moment")
HELP_TEXT = """I relay your messages to Claude Code (via clawsess). Each chat and forum topic has its own conversation.

/attach NAME - continue a session started elsewhere (a name or id from /sessions; without NAME: the most recent terminal session)
/detach - back to this chat's own conversation
/new - your next message starts a new conversation
/sessions - recent sessions
/status - which session this chat talks to, and where its conversation stands
/stop - stop the turn Claude is working on

A photo goes to Claude Code with its caption as the prompt.

Anything else goes to Claude Code as text."""

log = logging.getLogger("telegram_bot")


class Config:
    def __init__(self, env):
        self.token = env.get("TELEGRAM_BOT_TOKEN", "").strip()
        if not self.token:
            raise SystemExit("TELEGRAM_BOT_TOKEN is not set (get a token from @BotFather)")
        self.api_url = env.get("TELEGRAM_API_URL", "https://api.telegram.org").rstrip("/")
        clawsess = env.get("CLAWSESS", "clawsess")
        found = shutil.which(clawsess)
        if not found:
            raise SystemExit(f"clawsess not found: {clawsess!r} (set CLAWSESS, or run ./install.sh)")
        self.clawsess = os.path.abspath(found)
        self.cwd = os.path.abspath(env.get("BOT_CWD") or os.getcwd())
        if not os.path.isdir(self.cwd):
            raise SystemExit(f"BOT_CWD {self.cwd} is not a directory")
        self.allowed = None
        raw = env.get("ALLOWED_CHATS", "").strip()
        if raw:
            try:
                self.allowed = {int(x) for x in raw.split(",") if x.strip()}
            except ValueError:
                raise SystemExit(f"ALLOWED_CHATS must be comma-separated chat ids, not {raw!r}")
        bot_id = self.token.split(":", 1)[0]
        if not re.fullmatch(r"[0-9A-Za-z_-]{1,64}", bot_id):
            bot_id = "bot"
        default_state = os.path.join(os.path.expanduser("~"), ".local", "state", "clawsess",
                                     f"telegram-bot-{bot_id}.json")
        self.state_path = os.path.abspath(env.get("BOT_STATE") or default_state)
        self.poll_timeout = int(_number(env, "BOT_POLL_TIMEOUT", 50, minimum=0))
        self.wait = _number(env, "BOT_WAIT", 60, minimum=0)
        self.max_parallel = int(_number(env, "BOT_MAX_PARALLEL", 4, minimum=1))
        self.stop_grace = _number(env, "BOT_STOP_GRACE", 10, minimum=0)
        self.run_args = shlex.split(env.get("BOT_RUN_ARGS", ""))
        self.warm = env.get("BOT_WARM", "10m").strip() or "0"
        self.ask = env.get("BOT_ASK", "1").strip() not in ("0", "no", "false", "")
        self.ask_timeout = _number(env, "BOT_ASK_TIMEOUT", 300, minimum=1)
        self.edit_interval = _number(env, "BOT_EDIT_INTERVAL", 1.5, minimum=0)


def _number(env, name, default, minimum):
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a number, not {raw!r}")
    if value < minimum:
        raise SystemExit(f"{name} must be at least {minimum}")
    return int(value) if value == int(value) else value


# ---------------------------------------------------------------------------------------
# Telegram Bot API


class TelegramError(Exception):
    def __init__(self, description, code=None, retry_after=None):
        super().__init__(description)
        self.code = code
        self.retry_after = retry_after


class Telegram:
    def __init__(self, api_url, token):
        self._base = f"{api_url}/bot{token}/"

    def download(self, file_path, dest, limit):
        """Downloads a file from getFile's FILE_PATH into DEST (at most LIMIT bytes)."""
        base = self._base.replace("/bot", "/file/bot", 1)
        try:
            with urllib.request.urlopen(base + urllib.request.quote(file_path), timeout=60) as resp:
                data = resp.read(limit + 1)
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise TelegramError(f"download: {type(reason).__name__}: {reason}") from None
        if len(data) > limit:
            raise TelegramError(f"the file is larger than {limit} bytes")
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)

    def call(self, method, params=None, timeout=30):
        """Calls METHOD with a JSON body and returns its `result`; raises TelegramError.

        Error texts never contain the URL (it holds the token)."""
        data = json.dumps(params or {}).encode()
        req = urllib.request.Request(self._base + method, data=data,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                body = resp.read()
        except urllib.error.HTTPError as e:
            body = e.read()
            try:
                err = json.loads(body)
            except ValueError:
                raise TelegramError(f"{method}: HTTP {e.code}", e.code) from None
            params = err.get("parameters") or {}
            raise TelegramError(f"{method}: {err.get('description', e.code)}",
                                err.get("error_code", e.code), params.get("retry_after")) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise TelegramError(f"{method}: {type(reason).__name__}: {reason}") from None
        try:
            answer = json.loads(body)
        except ValueError:
            raise TelegramError(f"{method}: the answer is not JSON") from None
        if not answer.get("ok"):
            raise TelegramError(f"{method}: {answer.get('description')}", answer.get("error_code"))
        return answer.get("result")


def utf16_len(text):
    return len(text.encode("utf-16-le")) // 2


def split_message(text, limit=TELEGRAM_LIMIT):
    """Splits TEXT into pieces of at most LIMIT UTF-16 code units (Telegram's measure),
    at a line break or else a space when one is in the second half of the piece."""
    pieces = []
    while utf16_len(text) > limit:
        units = 0
        cut = 0
        for i, ch in enumerate(text):
            units += 2 if ord(ch) > 0xFFFF else 1
            if units > limit:
                cut = i
                break
        at = text.rfind("\n", 0, cut + 1)
        if at < cut // 2:
            at = text.rfind(" ", 0, cut + 1)
        if at < cut // 2:
            at = cut
        piece, text = text[:at], text[at:]
        if text[:1] in ("\n", " "):
            text = text[1:]
        if piece.strip():
            pieces.append(piece)
    if text.strip():
        pieces.append(text)
    return pieces


# ---------------------------------------------------------------------------------------
# State: the update offset and the keys whose next message starts a new session.


class State:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.offset = 0
        self.fresh = set()
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as e:
            # Never overwrite a state file we cannot read: old messages would be answered again.
            raise SystemExit(f"cannot read the state file {path}: {e}; fix or remove it")
        self.offset = int(data.get("offset", 0))
        self.fresh = set(data.get("fresh", []))

    def save(self):
        with self.lock:
            data = {"offset": self.offset, "fresh": sorted(self.fresh)}
            directory = os.path.dirname(self.path)
            os.makedirs(directory, mode=0o700, exist_ok=True)
            tmp = f"{self.path}.tmp-{os.getpid()}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)

    def set_fresh(self, key, on):
        with self.lock:
            changed = (key in self.fresh) != on
            (self.fresh.add if on else self.fresh.discard)(key)
        if changed:
            self.save()

    def is_fresh(self, key):
        with self.lock:
            return key in self.fresh


# ---------------------------------------------------------------------------------------
# The bot


class Bot:
    def __init__(self, config):
        self.cfg = config
        self.tg = Telegram(config.api_url, config.token)
        self.state = State(config.state_path)
        self.stop = threading.Event()
        self.username = None
        self.workers = {}
        self.workers_lock = threading.Lock()
        self.dispatch_lock = threading.Lock()
        self.turns = threading.BoundedSemaphore(config.max_parallel)
        self.refused = set()
        self.fatal = False
        self.asks = {}  # request_id -> (chat_id, message_id, text) of a message with buttons
        self.asks_lock = threading.Lock()

    # -- polling -----------------------------------------------------------------------

    def connect(self):
        """getMe, retried until it works or we are stopped."""
        delay = 1
        while not self.stop.is_set():
            try:
                me = self.tg.call("getMe", timeout=30)
                self.username = me.get("username")
                log.info("connected as @%s", self.username)
                return True
            except TelegramError as e:
                if e.code in (401, 404):
                    log.error("Telegram refused the token (%s): check TELEGRAM_BOT_TOKEN", e)
                    self.fatal = True
                    self.stop.set()
                    return False
                log.warning("getMe failed (%s); retrying in %s s", e, delay)
                self.stop.wait(delay)
                delay = min(delay * 2, 30)
        return False

    def poll_forever(self):
        delay = 1
        while not self.stop.is_set():
            params = {"timeout": self.cfg.poll_timeout, "allowed_updates": ["message", "callback_query"]}
            if self.state.offset:
                params["offset"] = self.state.offset
            try:
                updates = self.tg.call("getUpdates", params, timeout=self.cfg.poll_timeout + 15)
                delay = 1
            except TelegramError as e:
                if e.code == 409:
                    log.error("getUpdates: %s (another instance running, or a webhook set?)", e)
                else:
                    log.warning("getUpdates failed (%s); retrying in %s s", e, delay)
                self.stop.wait(e.retry_after or delay)
                delay = min(delay * 2, 30)
                continue
            with self.dispatch_lock:
                # Stopped meanwhile: leave these unconfirmed, the next start gets them.
                if self.stop.is_set() or not updates:
                    continue
                for update in updates:
                    self.state.offset = max(self.state.offset, int(update["update_id"]) + 1)
                    try:
                        self.dispatch(update)
                    except Exception:
                        log.exception("update %s", update.get("update_id"))
                # At most once: the offset is saved before the answers, so a crash or restart
                # never answers a message twice.
                self.state.save()

    def dispatch(self, update):
        if update.get("callback_query"):
            self.on_button(update["callback_query"])
            return
        msg = update.get("message")
        if not msg or "chat" not in msg:
            return
        chat_id = int(msg["chat"]["id"])
        # In forum supergroups a topic is its own conversation. (Replies in ordinary groups
        # carry a message_thread_id too, but no is_topic_message.)
        thread_id = msg.get("message_thread_id") if msg.get("is_topic_message") else None
        if self.cfg.allowed is not None and chat_id not in self.cfg.allowed:
            if chat_id not in self.refused:
                self.refused.add(chat_id)
                log.warning("refused chat %s (not in ALLOWED_CHATS)", chat_id)
                self.send(chat_id, thread_id, msg.get("message_id"),
                          f"Sorry, this bot does not talk to this chat (id {chat_id}). "
                          "Its owner can allow it with ALLOWED_CHATS.")
            return
        key = f"telegram:{chat_id}" + (f":{thread_id}" if thread_id else "")
        if self.is_command(msg.get("text") or "", "stop"):
            # Not through the chat's queue: its worker is busy with the turn to stop.
            threading.Thread(target=self.stop_turn, args=(key, chat_id, thread_id, msg),
                             daemon=True).start()
            return
        with self.workers_lock:
            worker = self.workers.get(key)
            if worker is None:
                worker = Worker(self, key, chat_id, thread_id)
                self.workers[key] = worker
                worker.thread.start()
            worker.queue.put(msg)

    def is_command(self, text, name):
        m = re.match(r"/([A-Za-z0-9_]+)(?:@([A-Za-z0-9_]+))?\s*\Z", text)
        if not m or m.group(1).lower() != name:
            return False
        to = m.group(2)
        return not (to and self.username and to.lower() != self.username.lower())

    def run_clawsess(self, *args):
        """Runs clawsess ARGS (never through a shell); returns (exit code, stdout, stderr)."""
        proc = subprocess.run([self.cfg.clawsess, *args], cwd=self.cfg.cwd, stdin=subprocess.DEVNULL,
                              capture_output=True)
        return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")

    def stop_turn(self, key, chat_id, thread_id, msg):
        """/stop: clawsess interrupts the chat's running turn; the turn then says so itself."""
        log.info("%s: /stop", key)
        code, out, err = self.run_clawsess("stop", "--key", key)
        if code != 0:
            text = "⚠️ " + error_line(err, code)
        elif out.startswith("nothing is running"):
            text = "Nothing is running in this chat."
        else:
            text = "Stopped."
        self.send(chat_id, thread_id, msg.get("message_id"), text)

    # -- permission buttons ----------------------------------------------------------------

    def ask(self, chat_id, thread_id, reply_to, event):
        """Puts a permission event to the chat as a message with Allow / Deny buttons."""
        request_id = event.get("request_id", "")
        text = (f"🔐 Claude wants to use {event.get('tool')}:\n{tool_summary(event.get('tool'), event.get('input'), 600)}"
                f"\n\nAllow it? (No answer in {event.get('timeout_s')} s: denied.)")
        params = {"chat_id": chat_id, "text": text, "reply_markup": {"inline_keyboard": [[
            {"text": "✅ Allow", "callback_data": f"allow:{request_id}"},
            {"text": "❌ Deny", "callback_data": f"deny:{request_id}"}]]}}
        if thread_id:
            params["message_thread_id"] = thread_id
        if reply_to:
            params["reply_to_message_id"] = reply_to
            params["allow_sending_without_reply"] = True
        try:
            sent = self.tg.call("sendMessage", params)
        except TelegramError as e:
            log.error("could not ask chat %s about %s: %s", chat_id, request_id, e)
            return
        with self.asks_lock:
            self.asks[request_id] = (chat_id, sent["message_id"], text)

    def on_button(self, query):
        """A press on Allow or Deny: `clawsess answer`, then the buttons go."""
        message = query.get("message") or {}
        chat_id = (message.get("chat") or {}).get("id")
        data = query.get("data") or ""
        decision, _, request_id = data.partition(":")
        if (self.cfg.allowed is not None and chat_id not in self.cfg.allowed) \
                or decision not in ("allow", "deny"):
            self.answer_button(query, "")
            return
        threading.Thread(target=self.decide, args=(query, chat_id, message, decision, request_id),
                         daemon=True).start()

    def decide(self, query, chat_id, message, decision, request_id):
        code, out, err = self.run_clawsess("answer", "--", request_id, decision)
        if code == 0:
            verdict = "✅ Allowed." if decision == "allow" else "❌ Denied."
        else:
            verdict = "⚠️ " + error_line(err, code)
        log.info("chat %s: %s %s: %s", chat_id, decision, request_id, verdict)
        self.answer_button(query, verdict)
        with self.asks_lock:
            asked = self.asks.pop(request_id, None)
        text = asked[2] if asked else (message.get("text") or "")
        self.edit(chat_id, message.get("message_id"), f"{text}\n\n{verdict}")

    def answer_button(self, query, text):
        try:
            self.tg.call("answerCallbackQuery", {"callback_query_id": query.get("id"), "text": text[:200]})
        except TelegramError as e:
            log.warning("answerCallbackQuery: %s", e)

    def expire_asks(self, request_ids):
        """The turn is over: its requests nobody answered were denied."""
        for request_id in request_ids:
            with self.asks_lock:
                asked = self.asks.pop(request_id, None)
            if asked:
                chat_id, message_id, text = asked
                self.edit(chat_id, message_id, f"{text}\n\n⌛ Not answered: denied.")

    def edit(self, chat_id, message_id, text):
        """editMessageText (which also drops the buttons); the TelegramError, if any."""
        if message_id is None:
            return None
        try:
            self.tg.call("editMessageText", {"chat_id": chat_id, "message_id": message_id,
                                             "text": shorten(text, TELEGRAM_LIMIT)})
        except TelegramError as e:
            if "not modified" in str(e):
                return None
            log.warning("editMessageText in %s: %s", chat_id, e)
            return e
        return None

    def retire(self, worker):
        """Called by an idle worker: True if it may end (nothing arrived meanwhile)."""
        with self.workers_lock:
            if worker.queue.empty():
                self.workers.pop(worker.key, None)
                return True
            return False

    # -- sending -------------------------------------------------------------------------

    def send(self, chat_id, thread_id, reply_to, text, pre=False):
        """Sends TEXT (split to Telegram's limit), the first piece as a reply to REPLY_TO;
        PRE: as a code block."""
        if not text.strip():
            text = "(empty reply)"
        pieces = split_message(text, 3500 if pre else TELEGRAM_LIMIT)
        for n, piece in enumerate(pieces):
            params = {"chat_id": chat_id, "text": piece}
            if pre:
                params["text"] = f"<pre>{html.escape(piece, quote=False)}</pre>"
                params["parse_mode"] = "HTML"
            if thread_id:
                params["message_thread_id"] = thread_id
            if n == 0 and reply_to:
                params["reply_to_message_id"] = reply_to
                params["allow_sending_without_reply"] = True
            self._send_one(params, piece)

    def _send_one(self, params, plain):
        for attempt in range(5):
            try:
                self.tg.call("sendMessage", params)
                return
            except TelegramError as e:
                if e.code == 400 and params.get("parse_mode"):
                    params = dict(params, text=plain)  # markup refused: send it plain
                    params.pop("parse_mode")
                    continue
                if e.code is not None and e.code < 500 and e.code != 429:
                    log.error("sendMessage to %s failed: %s", params["chat_id"], e)
                    return
                wait = e.retry_after or min(2 ** attempt, 15)
                log.warning("sendMessage to %s failed (%s); retrying in %s s", params["chat_id"], e, wait)
                time.sleep(wait)
        log.error("sendMessage to %s: giving up", params["chat_id"])

    def typing(self, chat_id, thread_id, done):
        params = {"chat_id": chat_id, "action": "typing"}
        if thread_id:
            params["message_thread_id"] = thread_id
        while not done.is_set():
            try:
                self.tg.call("sendChatAction", params, timeout=10)
            except TelegramError:
                pass
            done.wait(4.5)  # Telegram shows "typing" for 5 s

    # -- shutdown ------------------------------------------------------------------------

    def shutdown(self):
        with self.dispatch_lock:
            self.stop.set()
        with self.workers_lock:
            workers = list(self.workers.values())
        for w in workers:
            w.queue.put(None)
        deadline = time.monotonic() + self.cfg.stop_grace
        for w in workers:
            w.thread.join(max(0.0, deadline - time.monotonic()))
        for w in workers:
            proc = w.proc
            if proc is not None and proc.poll() is None:
                log.info("%s: stopping the running turn", w.key)
                # clawsess stops claude and frees the session on SIGTERM.
                proc.terminate()
        for w in workers:
            w.thread.join(15)
        self.state.save()


def shorten(text, limit):
    """TEXT cut to LIMIT UTF-16 code units, with an ellipsis when cut."""
    if utf16_len(text) <= limit:
        return text
    while utf16_len(text) > limit - 1:
        text = text[:max(1, len(text) - max(1, (utf16_len(text) - limit + 1) // 2))]
    return text + "…"


def tool_summary(tool, tool_input, limit=120):
    """A tool call in a few words: Bash's command, a file tool's path, a search's pattern."""
    if not isinstance(tool_input, dict):
        return ""
    for field in ("command", "file_path", "notebook_path", "pattern", "url", "query",
                  "description", "prompt"):
        value = tool_input.get(field)
        if isinstance(value, str) and value.strip():
            return shorten(" ".join(value.split()), limit)
    return shorten(json.dumps(tool_input, ensure_ascii=False), limit)


class Progress:
    """A turn's "working..." message: sent at the turn's first tool call, edited as more
    come (at most once per BOT_EDIT_INTERVAL, and never while Telegram asks to wait), and
    given its last state when the turn is over. The reply itself is a message of its own."""

    MAX_LINES = 25

    def __init__(self, bot, chat_id, thread_id, reply_to):
        self.bot = bot
        self.chat_id = chat_id
        self.thread_id = thread_id
        self.reply_to = reply_to
        self.header = "⏳ Working…"
        self.lines = []
        self.message_id = None
        self.shown = None
        self.next_edit = 0.0
        self.lock = threading.Lock()
        self.done = threading.Event()
        threading.Thread(target=self._tick, daemon=True).start()

    def tool(self, name, tool_input):
        summary = tool_summary(name, tool_input)
        with self.lock:
            self.lines.append(f"🔧 {name}" + (f": {summary}" if summary else ""))
        self.flush()

    def text(self, text):
        """Text between tool calls (the model saying what it does next)."""
        with self.lock:
            if self.message_id is None and not self.lines:
                return  # no tool call yet: this may be the whole reply
            self.lines.append("💬 " + shorten(" ".join(text.split()), 200))
        self.flush()

    def finish(self, header):
        self.done.set()
        with self.lock:
            if self.message_id is None:
                return  # no tool was called: the reply says it all
            self.header = header
        self.flush(force=True)

    def _render(self):
        lines = self.lines[-self.MAX_LINES:]
        skipped = len(self.lines) - len(lines)
        head = self.header + (f"\n… {skipped} earlier steps" if skipped else "")
        return shorten("\n".join([head, *lines]), TELEGRAM_LIMIT)

    def flush(self, force=False):
        with self.lock:
            if not self.lines:
                return
            text = self._render()
            now = time.monotonic()
            if text == self.shown or (not force and now < self.next_edit):
                return
            self.shown = text
            self.next_edit = now + self.bot.cfg.edit_interval
            if self.message_id is None:
                params = {"chat_id": self.chat_id, "text": text}
                if self.thread_id:
                    params["message_thread_id"] = self.thread_id
                if self.reply_to:
                    params["reply_to_message_id"] = self.reply_to
                    params["allow_sending_without_reply"] = True
                try:
                    self.message_id = self.bot.tg.call("sendMessage", params)["message_id"]
                except TelegramError as e:
                    log.warning("progress message in %s: %s", self.chat_id, e)
                    self.next_edit = now + (e.retry_after or 5)
                    self.shown = None
                return
            err = self.bot.edit(self.chat_id, self.message_id, text)
            if err is not None:
                self.shown = None  # try again later
                self.next_edit = now + (err.retry_after or 5)

    def _tick(self):
        # Events that came during the edit pause are shown once it is over.
        while not self.done.wait(0.25):
            self.flush()


class Worker:
    """One chat or topic: its messages are handled one after the other, in order."""

    def __init__(self, bot, key, chat_id, thread_id):
        self.bot = bot
        self.key = key
        self.chat_id = chat_id
        self.thread_id = thread_id
        self.queue = queue.Queue()
        self.proc = None
        self.thread = threading.Thread(target=self.loop, name=key, daemon=True)

    def loop(self):
        while True:
            try:
                msg = self.queue.get(timeout=WORKER_IDLE)
            except queue.Empty:
                if self.bot.retire(self):
                    return
                continue
            if msg is None:
                return
            try:
                if self.bot.stop.is_set():
                    self.reply(msg, STOPPING_TEXT)
                else:
                    self.handle(msg)
            except Exception:
                log.exception("%s: message %s", self.key, msg.get("message_id"))
                self.reply(msg, "Sorry, something went wrong in the bot; see its log.")

    def reply(self, msg, text, pre=False):
        self.bot.send(self.chat_id, self.thread_id, msg.get("message_id"), text, pre=pre)

    def clawsess(self, *args, stdin=None):
        """Runs clawsess ARGS (never through a shell); returns (exit code, stdout, stderr)."""
        cmd = [self.bot.cfg.clawsess, *args]
        proc = subprocess.Popen(cmd, cwd=self.bot.cfg.cwd, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.proc = proc
        try:
            out, err = proc.communicate(stdin.encode() if stdin is not None else b"")
        finally:
            self.proc = None
        return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    def handle(self, msg):
        if msg.get("photo"):
            self.photo(msg)
            return
        text = msg.get("text")
        if text is None:
            text = msg.get("caption")
        if text is None:
            self.reply(msg, "I can only read text messages and photos.")
            return
        m = re.match(r"/([A-Za-z0-9_]+)(?:@([A-Za-z0-9_]+))?(?:\s+(.*))?\Z", text, re.S)
        if m:
            command, to, arg = m.group(1).lower(), m.group(2), (m.group(3) or "").strip()
            if to and self.bot.username and to.lower() != self.bot.username.lower():
                return  # a command for another bot in this group
            handler = getattr(self, f"cmd_{command}", None)
            if handler is not None:
                log.info("%s: /%s", self.key, command)
                handler(msg, arg)
                return
            # Not ours: it goes to Claude Code as text (clawsess never runs it as a command).
        self.turn(msg, text)

    # -- commands ------------------------------------------------------------------------

    def cmd_start(self, msg, arg):
        self.reply(msg, HELP_TEXT)

    cmd_help = cmd_start

    def cmd_attach(self, msg, arg):
        if arg and (len(arg.split()) != 1 or arg.startswith("-")):
            self.reply(msg, "Usage: /attach NAME (a session name or id; see /sessions)")
            return
        args = ["attach", "--key", self.key, "--json"] + (["--", arg] if arg else [])
        code, out, err = self.clawsess(*args)
        try:
            done = json.loads(out) if code == 0 else None
        except ValueError:
            done = None
        if not isinstance(done, dict):
            self.report(msg, code, out, err)
            return
        name = f" ({done['name']})" if done.get("name") else ""
        self.reply(msg, f"Attached {self.key} to session {done.get('session_id')}{name}"
                        f" in {done.get('cwd')}.\n" + topic_text(done.get("topic")))

    def cmd_detach(self, msg, arg):
        self.report(msg, *self.clawsess("detach", "--key", self.key))

    def cmd_new(self, msg, arg):
        self.bot.state.set_fresh(self.key, True)
        self.reply(msg, "OK: your next message starts a new conversation"
                        " (and detaches this chat if it is attached).")

    def cmd_sessions(self, msg, arg):
        code, out, err = self.clawsess("list", "--limit", "10")
        if code != 0:
            self.report(msg, code, out, err)
        else:
            self.reply(msg, out.rstrip() or "no sessions yet", pre=True)

    def cmd_status(self, msg, arg):
        code, out, err = self.clawsess("current", "--key", self.key, "--json")
        fresh = self.bot.state.is_fresh(self.key)
        if code != 0 or not out.strip():
            text = "This chat has no conversation yet; your next message starts one."
        else:
            try:
                cur = json.loads(out)
            except ValueError:
                cur = {"session_id": out.strip()}
            how = {"key": "attached", "global": "following the global attachment",
                   "own": "its own conversation"}.get(cur.get("via"), cur.get("via") or "")
            text = f"This chat ({self.key}) talks to session {cur.get('session_id')} ({how})."
            code, out, err = self.clawsess("show", "--topic", "--json", "--", str(cur.get("session_id")))
            try:
                text += "\n" + topic_text(json.loads(out)["topic"])
            except (ValueError, KeyError, TypeError):
                text += "\n(" + error_line(err, code) + ")"
        if fresh:
            text += "\nAfter /new: your next message starts a new conversation."
        self.reply(msg, text)

    def report(self, msg, code, out, err):
        if code == 0:
            self.reply(msg, out.strip() or "OK")
        else:
            self.reply(msg, "⚠️ " + error_line(err, code))

    # -- a turn --------------------------------------------------------------------------

    def photo(self, msg):
        """A photo: its largest size goes to the turn with --image, the caption as prompt."""
        sizes = [p for p in msg["photo"] if isinstance(p, dict) and p.get("file_id")]
        best = max(sizes, key=lambda p: (p.get("file_size") or 0, p.get("width", 0) * p.get("height", 0)))
        directory = tempfile.mkdtemp(prefix="clawsess-bot-")
        try:
            path = os.path.join(directory, "photo.jpg")
            try:
                info = self.bot.tg.call("getFile", {"file_id": best["file_id"]})
                self.bot.tg.download(info["file_path"], path, PHOTO_LIMIT)
            except (TelegramError, KeyError, TypeError) as e:
                log.warning("%s: could not get the photo: %s", self.key, e)
                self.reply(msg, f"⚠️ Could not get the photo from Telegram ({e}).")
                return
            caption = (msg.get("caption") or "").strip() or "(a photo, sent without a caption)"
            self.turn(msg, caption, images=[path])
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def turn(self, msg, text, images=()):
        bot = self.bot
        while not bot.turns.acquire(timeout=1):
            if bot.stop.is_set():
                self.reply(msg, STOPPING_TEXT)
                return
        done = threading.Event()
        progress = Progress(bot, self.chat_id, self.thread_id, msg.get("message_id"))
        asked = []
        try:
            threading.Thread(target=bot.typing, args=(self.chat_id, self.thread_id, done),
                             daemon=True).start()
            fresh = bot.state.is_fresh(self.key)
            # The prompt goes on stdin, so no user text is ever an argument (not even after
            # `--`): it cannot become a flag, and other local users cannot read it in `ps`.
            args = ["run", "--key", self.key, "--stream", "--cwd", bot.cfg.cwd,
                    "--wait", str(bot.cfg.wait), "--warm", bot.cfg.warm, *bot.cfg.run_args]
            if bot.cfg.ask:
                args += ["--ask", "--ask-timeout", str(bot.cfg.ask_timeout)]
            for image in images:
                args += ["--image", image]
            if fresh:
                args.append("--new")
            log.info("%s: turn (%d chars%s%s)", self.key, len(text),
                     f", {len(images)} images" if images else "", ", new session" if fresh else "")

            def on_event(event):
                kind = event.get("type")
                if kind == "tool":
                    progress.tool(event.get("tool"), event.get("input"))
                elif kind == "text":
                    progress.text(event.get("text") or "")
                elif kind == "permission":
                    asked.append(event.get("request_id"))
                    bot.ask(self.chat_id, self.thread_id, msg.get("message_id"), event)

            code, result, err = self.stream(args, text, on_event)
        finally:
            done.set()
            bot.turns.release()
            bot.expire_asks(asked)
        if isinstance(result, dict) and result.get("interrupted"):
            progress.finish("⏹ Stopped.")
            self.reply(msg, "⏹ Stopped before it was done.")
            return
        progress.finish("✔️ Done." if code == 0 else "⚠️ Ended with an error.")
        if code == 0 and isinstance(result, dict):
            if fresh:
                bot.state.set_fresh(self.key, False)
            reply = str(result.get("result") or "")
            if result.get("is_error"):
                reply = "⚠️ " + (reply or "Claude Code reported an error")
            elif result.get("replaced_session"):
                reply = ("(The previous conversation could not be continued, so this is a new one.)\n\n"
                         + reply)
            self.reply(msg, reply or "(empty reply)")
        elif isinstance(result, dict) and result.get("busy"):  # exit 75 from clawsess itself
            self.reply(msg, BUSY_TEXT)
        elif bot.stop.is_set():
            self.reply(msg, STOPPING_TEXT)
        elif isinstance(result, dict) and result.get("error"):  # clawsess failed around claude
            log.warning("%s: clawsess run exited %s: %s", self.key, code, result["error"])
            self.reply(msg, "⚠️ " + str(result["error"])[:600])
        elif isinstance(result, dict) and result.get("result"):
            self.reply(msg, "⚠️ Claude Code: " + str(result["result"]))
        else:
            log.warning("%s: clawsess run exited %s: %s", self.key, code, err.strip()[-2000:])
            self.reply(msg, "⚠️ " + error_line(err, code))

    def stream(self, args, text, on_event):
        """Runs `clawsess run ARGS --stream` with TEXT on stdin, passing each event to
        ON_EVENT as it comes; returns (exit code, the result object or None, stderr)."""
        proc = subprocess.Popen([self.bot.cfg.clawsess, *args], cwd=self.bot.cfg.cwd,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.proc = proc
        errors = []
        reader = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)
        reader.start()
        result = None
        try:
            try:
                proc.stdin.write(text.encode())
                proc.stdin.close()
            except OSError:
                pass  # clawsess failed before reading it: its result line says why
            for raw in proc.stdout:
                try:
                    event = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(event, dict):
                    continue
                if event.get("type") == "result":
                    result = event
                    continue
                try:
                    on_event(event)
                except Exception:
                    log.exception("%s: event %s", self.key, event.get("type"))
            proc.wait()
            reader.join(10)
        finally:
            self.proc = None
        err = errors[0].decode(errors="replace") if errors else ""
        return proc.returncode, result, err


def topic_text(topic):
    """Where a conversation stands, from the `topic` of `clawsess show --topic --json`: who
    spoke last, what was done (files edited, commands run), the last prompt and reply."""
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
        if a.get("tool") == "Bash":
            what = f"`{what}`"
        what = f"{verbs.get(a.get('tool'), '')} {what}".strip()
        if a.get("count", 1) > 1:
            what += f" ×{a['count']}"
        notes = [f"{a[k]} {k}" for k in ("failed", "denied") if a.get(k)]
        done.append(what + (f" ({', '.join(notes)})" if notes else ""))
    more = len(topic.get("actions") or []) - len(done) + (topic.get("actions_omitted") or 0)
    if more > 0:
        done.append(f"{more} more")
    lines.append("Done: " + ("; ".join(done) if done else "no tool calls") + ".")
    if prompts:
        lines.append("Last prompt: " + shorten(prompts[-1].get("text") or "", 300))
    if topic.get("last_reply"):
        lines.append("Last reply: " + shorten(topic["last_reply"], 600))
    return "\n".join(lines)


def ago(timestamp):
    """", 5 min ago" for an RFC 3339 UTC timestamp; "" when there is none."""
    try:
        then = calendar.timegm(time.strptime(timestamp[:19], "%Y-%m-%dT%H:%M:%S"))
    except (TypeError, ValueError):
        return ""
    secs = max(0, int(time.time() - then))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if secs >= size:
            return f", {secs // size} {unit} ago"
    return f", {secs} s ago"


def shorten(text, limit):
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def error_line(stderr, code):
    """The last `clawsess:` line of STDERR (else its last line), shortened."""
    lines = [l.strip() for l in stderr.splitlines() if l.strip()]
    ours = [l for l in lines if l.startswith("clawsess:")]
    line = (ours or lines or [f"clawsess exited with status {code}"])[-1]
    if line.startswith("clawsess: "):
        line = line[len("clawsess: "):]
    return line if len(line) <= 600 else line[:600] + "…"


def main():
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(threadName)s: %(message)s")
    cfg = Config(os.environ)
    bot = Bot(cfg)
    if cfg.allowed is None:
        log.warning("ALLOWED_CHATS is not set: anyone who finds this bot drives Claude Code in %s",
                    cfg.cwd)

    def on_signal(signum, frame):
        log.info("signal %s: stopping", signum)
        bot.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    poller = threading.Thread(target=lambda: bot.connect() and bot.poll_forever(),
                              name="poller", daemon=True)
    poller.start()
    # The main thread only waits, so signals are handled at once.
    while not bot.stop.wait(0.5):
        if not poller.is_alive():
            break
    bot.shutdown()
    log.info("stopped")
    return 1 if bot.fatal else 0


if __name__ == "__main__":
    sys.exit(main())
