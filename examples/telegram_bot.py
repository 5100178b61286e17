#!/usr/bin/env python3
"""A Telegram bot that talks to Claude Code through clawsess, on python-telegram-bot.

Each chat (and each forum topic) is one clawsess key, telegram:<chat>[:<topic>], so every
chat keeps its own durable Claude Code session, and `/attach NAME` continues a session that
was started in a terminal. A turn is live: one "working..." message shows the tools Claude
calls, a tool call that needs permission gets Allow / Deny buttons, a question of Claude's
its options as buttons (or a reply in words), a plan Approve / Keep planning, /stop stops
the turn, and a photo goes to Claude with its caption. A message sent while Claude works
waits for its turn (the chat is told its place in line); one that starts with ! goes into
the running turn, one that starts with /now stops it and runs now.

Closed by default: it answers only the users of ALLOWED_USERS and its owner. With neither,
it logs a one-time pairing code at start; `/pair CODE` in a private chat with the bot makes
that user its owner (kept in BOT_STATE). In groups it hears allowed users only when they
mention it, reply to it or send it a command. A stranger gets one refusal per chat and
nothing runs.

Settings (environment):

  TELEGRAM_BOT_TOKEN  the bot's token from @BotFather (required)
  ALLOWED_USERS       comma-separated Telegram user ids the bot obeys (besides its owner)
  ALLOWED_CHATS       comma-separated chat ids the bot serves at all (default: every chat)
  BOT_PAIR_TTL        seconds the pairing code works (default 600)
  BOT_CWD             working directory of new sessions (default: the current dir)
  CLAWSESS            the clawsess executable (default: clawsess on PATH)
  TELEGRAM_API_URL    Bot API server (default https://api.telegram.org)
  BOT_STATE           state file: update offset, pending /new, owner (default
                      ~/.local/state/clawsess/telegram-bot-<bot id>.json)
  BOT_POLL_TIMEOUT    getUpdates long-poll timeout in seconds (default 50)
  BOT_WAIT            seconds a turn waits for a session busy elsewhere (default 60)
  BOT_MAX_PARALLEL    turns running at once across all chats (default 4)
  BOT_STOP_GRACE      seconds running turns may finish after SIGTERM/SIGINT (default 10)
  BOT_RUN_ARGS        extra `clawsess run` arguments, split like a shell (operator config)
  BOT_WARM            how long a chat's claude stays up after its turn (default 10m; 0: off)
  BOT_ASK             1 (default): Allow / Deny buttons for tool calls; 0: they are denied
  BOT_ASK_TIMEOUT     seconds a permission request waits for a button (default 300)
  BOT_EDIT_INTERVAL   least seconds between two edits of a progress message (default 1.5)
  BOT_STEER_PREFIX    a message starting with it goes into the running turn (default !;
                      empty: off)
  BOT_NOW_PREFIX      a message starting with it stops the running turn and runs now
                      (default /now; empty: off)

Run: TELEGRAM_BOT_TOKEN=... python3 telegram_bot.py   (then /pair CODE from the log)
"""

import asyncio
import html
import logging
import os
import re
import shlex
import signal
import sys
import tempfile
import time
import weakref

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bot_common import (STOPPING_TEXT, MidTurn, Pairing, Progress, answer_in_words,  # noqa: E402
                        Asks, Line, chat_turn, ids, model_command, number, open_question, press, read_json,
                        status_text, write_json)
from clawsess_client import Clawsess, ClawsessError, topic_text  # noqa: E402

TELEGRAM_LIMIT = 4096
PHOTO_LIMIT = 5 * 1024 * 1024
HELP_TEXT = """I relay your messages to Claude Code (via clawsess). Each chat and forum topic has its own conversation.

/attach NAME - continue a session started elsewhere (a name or id from /sessions; without NAME: the most recent terminal session)
/detach - back to this chat's own conversation
/new - your next message starts a new conversation
/sessions - recent sessions
/status - which session this chat talks to, its model and settings, when it resets next, and where its conversation stands
/model NAME - the model of this chat's turns (like opus or sonnet); /model alone shows it, /model default goes back to the default
/stop - stop the turn Claude is working on
{midturn}
A message sent while Claude works waits for its turn. When Claude asks you something, tap an option or reply in your own words.

A photo goes to Claude Code with its caption as the prompt. Anything else goes to Claude Code as text."""

log = logging.getLogger("telegram_bot")


def utf16_len(text):
    return len(text.encode("utf-16-le")) // 2


def shorten(text, limit):
    """TEXT cut to LIMIT UTF-16 code units, with an ellipsis when cut."""
    if utf16_len(text) <= limit:
        return text
    while utf16_len(text) > limit - 1:
        text = text[:max(1, len(text) - max(1, (utf16_len(text) - limit + 1) // 2))]
    return text + "…"


def split_message(text, limit=TELEGRAM_LIMIT):
    """TEXT in pieces of at most LIMIT UTF-16 code units (Telegram's measure), cut at a line
    break, else a space, when there is one in the second half of the piece."""
    pieces = []
    while utf16_len(text) > limit:
        units, cut = 0, 0
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
# Settings and state


class Config:
    def __init__(self, env):
        self.token = env.get("TELEGRAM_BOT_TOKEN", "").strip()
        if not self.token:
            raise SystemExit("TELEGRAM_BOT_TOKEN is not set (get a token from @BotFather; "
                             "see --help)")
        self.api_url = env.get("TELEGRAM_API_URL", "https://api.telegram.org").rstrip("/")
        try:
            self.clawsess = Clawsess(env.get("CLAWSESS", "clawsess"))
        except ClawsessError as e:
            raise SystemExit(f"{e} (set CLAWSESS, or run ./install.sh)")
        self.cwd = os.path.abspath(env.get("BOT_CWD") or os.getcwd())
        if not os.path.isdir(self.cwd):
            raise SystemExit(f"BOT_CWD {self.cwd} is not a directory")
        self.clawsess.cwd = self.cwd
        self.users = ids(env, "ALLOWED_USERS")
        self.chats = ids(env, "ALLOWED_CHATS") or None
        self.pair_ttl = number(env, "BOT_PAIR_TTL", 600, 1)
        bot_id = self.token.split(":", 1)[0]
        bot_id = bot_id if re.fullmatch(r"[0-9A-Za-z_-]{1,64}", bot_id) else "bot"
        default = os.path.join(os.path.expanduser("~"), ".local", "state", "clawsess",
                               f"telegram-bot-{bot_id}.json")
        self.state_path = os.path.abspath(env.get("BOT_STATE") or default)
        self.poll_timeout = int(number(env, "BOT_POLL_TIMEOUT", 50))
        self.wait = number(env, "BOT_WAIT", 60)
        self.max_parallel = int(number(env, "BOT_MAX_PARALLEL", 4, 1))
        self.stop_grace = number(env, "BOT_STOP_GRACE", 10)
        self.run_args = shlex.split(env.get("BOT_RUN_ARGS", ""))
        self.warm = env.get("BOT_WARM", "10m").strip() or "0"
        self.ask = env.get("BOT_ASK", "1").strip() not in ("0", "no", "false", "")
        self.ask_timeout = number(env, "BOT_ASK_TIMEOUT", 300, 1)
        self.edit_interval = number(env, "BOT_EDIT_INTERVAL", 1.5)
        self.mid = MidTurn(env)


class State:
    """The update offset, the keys whose next message starts a new session, the owners.
    Written atomically (mode 0600) after every change."""

    def __init__(self, path):
        self.path = path
        data = read_json(path)
        self.offset = int(data.get("offset", 0))
        self.fresh = set(data.get("fresh", []))
        self.owners = {int(x) for x in data.get("owners", [])}
        # The questions open when it was saved (see bot_common.Asks), until the bot takes them.
        self.kept_asks = data.get("asks", [])
        self.asks = None

    def save(self):
        write_json(self.path, {"offset": self.offset, "fresh": sorted(self.fresh), "owners": sorted(self.owners), "asks": self.asks.saved() if self.asks is not None else self.kept_asks})

    def set_fresh(self, key, on):
        if (key in self.fresh) != on:
            (self.fresh.add if on else self.fresh.discard)(key)
            self.save()


# ---------------------------------------------------------------------------------------
# The bot

from telegram import (InlineKeyboardButton, InlineKeyboardMarkup, ReplyParameters,  # noqa: E402
                      Update)
from telegram.constants import ChatAction, ChatType, ParseMode  # noqa: E402
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter  # noqa: E402
from telegram.ext import (ApplicationBuilder, ApplicationHandlerStop,  # noqa: E402
                          CallbackQueryHandler, CommandHandler, MessageHandler,
                          TypeHandler, filters)


def key_of(message):
    # In forum supergroups a topic is its own conversation. (Replies in ordinary groups carry
    # a message_thread_id too, but no is_topic_message.)
    thread = message.message_thread_id if message.is_topic_message else None
    return f"telegram:{message.chat.id}" + (f":{thread}" if thread else "")


class Bot:
    def __init__(self, cfg, app):
        self.cfg, self.app, self.cs = cfg, app, cfg.clawsess
        self.tg = app.bot
        self.state = State(cfg.state_path)
        self.pairing = None
        self.refused = set()  # chats told once that they are not served
        self.locks = weakref.WeakValueDictionary()  # key -> asyncio.Lock: one turn at a time
        self.slots = asyncio.Semaphore(cfg.max_parallel)
        self.running = {}  # key -> the clawsess Turn running there
        self.side = set()  # Turns of messages that steer or interrupt (not in a key's line)
        self.line = Line()  # each key's messages running or waiting
        self.interrupted = {}  # key -> what interrupted its running turn
        # request_id -> Asked: a message with buttons; the questions kept in the state file.
        self.asks = Asks(self.state.save)
        self.asks.restore(self.state.kept_asks, cfg.ask_timeout + 60)
        self.state.asks = self.asks
        self.mid = cfg.mid
        self.help = HELP_TEXT.format(midturn="".join(f"{line}\n" for line in self.mid.help_lines()))
        self.stopping = False

    def allowed(self, user):
        return user is not None and (user.id in self.cfg.users or user.id in self.state.owners)

    # -- who is heard ----------------------------------------------------------------------

    def addressed(self, message):
        """In private chats, every message; in groups, a command to this bot, a mention of
        it, or a reply to one of its messages."""
        if message.chat.type == ChatType.PRIVATE:
            return True
        me = self.tg.username.lower()
        text = message.text or message.caption or ""
        command = re.match(r"/[A-Za-z0-9_]+(?:@([A-Za-z0-9_]+))?", text)
        if command and (command.group(1) or me).lower() == me:
            return True
        if f"@{me}" in text.lower():
            return True
        reply = message.reply_to_message
        # In a forum topic every message "replies" to the topic's first message.
        return bool(reply and reply.from_user and reply.from_user.id == self.tg.id
                    and not (message.is_topic_message and reply.forum_topic_created))

    async def gate(self, update: Update, ctx):
        """Runs before every handler: only allowed users in served chats get further."""
        chat, user = update.effective_chat, update.effective_user
        query = update.callback_query
        if query is not None:
            if not self.allowed(user) or (self.cfg.chats is not None and chat.id not in self.cfg.chats):
                log.warning("button press by user %s in chat %s ignored (not allowed)",
                            user and user.id, chat and chat.id)
                await self.quiet(query.answer("Only the bot's allowed users can answer this."))
                raise ApplicationHandlerStop
            return
        message = update.message
        if message is None or chat is None:
            raise ApplicationHandlerStop
        if self.cfg.chats is not None and chat.id not in self.cfg.chats:
            await self.refuse(message, f"Sorry, this bot does not talk to this chat (id {chat.id}). "
                                       "Its owner can allow it with ALLOWED_CHATS.")
            raise ApplicationHandlerStop
        text = message.text or ""
        if re.match(r"/pair(@\w+)?(\s|$)", text):
            await self.pair(message, text.split(None, 1)[1] if " " in text.strip() else "")
            raise ApplicationHandlerStop
        if not self.addressed(message):
            raise ApplicationHandlerStop
        if not self.allowed(user):
            log.warning("refused user %s in chat %s (not allowed)", user and user.id, chat.id)
            await self.refuse(message, f"Sorry, I only answer my owner (your user id is "
                                       f"{user and user.id}; the owner can allow it with "
                                       "ALLOWED_USERS).")
            raise ApplicationHandlerStop

    async def refuse(self, message, text):
        if message.chat.id not in self.refused:
            self.refused.add(message.chat.id)
            await self.send(message, text)

    async def pair(self, message, code):
        user = message.from_user
        if message.chat.type != ChatType.PRIVATE:
            await self.refuse(message, "Pairing works only in a private chat with me.")
        elif self.pairing is not None and user is not None and self.pairing.take(code):
            self.state.owners.add(user.id)
            self.state.save()
            self.pairing = None
            log.warning("paired: user %s is now the owner", user.id)
            await self.send(message, "Paired: you are my owner now. " + self.help)
        else:
            log.warning("pairing: wrong or used code from user %s", user and user.id)
            await self.send(message, "That code does not work (wrong, used or expired).")

    # -- sending -----------------------------------------------------------------------------

    @staticmethod
    async def quiet(call):
        try:
            return await call
        except (BadRequest, Forbidden, NetworkError) as e:
            log.warning("%s", e)

    async def send(self, message, text, pre=False, **extra):
        """TEXT as replies to MESSAGE (split to Telegram's limit); PRE: a code block.
        Retries what Telegram asks to retry; the last message sent, or None."""
        sent = None
        for n, piece in enumerate(split_message(text or "(empty reply)", 3500 if pre else TELEGRAM_LIMIT)):
            params = dict(chat_id=message.chat.id, text=piece, **extra)
            if pre:
                params.update(text=f"<pre>{html.escape(piece, quote=False)}</pre>", parse_mode=ParseMode.HTML)
            if message.is_topic_message:
                params["message_thread_id"] = message.message_thread_id
            if n == 0:
                params["reply_parameters"] = ReplyParameters(message.message_id, allow_sending_without_reply=True)
            for attempt in range(5):
                try:
                    sent = await self.tg.send_message(**params)
                    break
                except RetryAfter as e:
                    await asyncio.sleep(e.retry_after if isinstance(e.retry_after, (int, float)) else 5)
                except BadRequest as e:
                    if not params.get("parse_mode"):
                        log.error("sendMessage to %s: %s", message.chat.id, e)
                        break
                    params.update(text=piece, parse_mode=None)  # markup refused: plain
                except (Forbidden, InvalidToken) as e:
                    log.error("sendMessage to %s: %s", message.chat.id, e)
                    break
                except NetworkError as e:
                    log.warning("sendMessage to %s: %s; retrying", message.chat.id, e)
                    await asyncio.sleep(min(2 ** attempt, 15))
        return sent

    async def edit(self, chat_id, message_id, text, reply_markup=None):
        """editMessageText (which drops the buttons but REPLY_MARKUP's); seconds to wait
        before the next edit when Telegram asks for it, else 0."""
        try:
            await self.tg.edit_message_text(shorten(text, TELEGRAM_LIMIT), chat_id=chat_id, message_id=message_id,
                                            reply_markup=reply_markup)
        except RetryAfter as e:
            return e.retry_after if isinstance(e.retry_after, (int, float)) else 5
        except BadRequest as e:
            if "not modified" not in str(e):
                log.warning("editMessageText in %s: %s", chat_id, e)
        except NetworkError as e:
            log.warning("editMessageText in %s: %s", chat_id, e)
            return 5
        return 0

    # -- commands ----------------------------------------------------------------------------

    async def cmd_help(self, update, ctx):
        await self.send(update.message, self.help)

    async def cmd_attach(self, update, ctx):
        message, key = update.message, key_of(update.message)
        arg = " ".join(ctx.args)
        if ctx.args and (len(ctx.args) != 1 or arg.startswith("-")):
            return await self.send(message, "Usage: /attach NAME (a session name or id; see /sessions)")
        async with self.lock(key):
            try:
                done = await self.cs.attach(key, arg or None)
            except ClawsessError as e:
                return await self.send(message, "⚠️ " + e.message)
            name = f" ({done['name']})" if done.get("name") else ""
            await self.send(message, f"Attached {key} to session {done.get('session_id')}{name} in "
                                     f"{done.get('cwd')}.\n" + topic_text(done.get("topic")))

    async def cmd_detach(self, update, ctx):
        key = key_of(update.message)
        async with self.lock(key):
            try:
                out = await self.cs.call("detach", "--key", key)
                await self.send(update.message, out.strip() or "OK")
            except ClawsessError as e:
                await self.send(update.message, "⚠️ " + e.message)

    async def cmd_new(self, update, ctx):
        async with self.lock(key_of(update.message)):
            self.state.set_fresh(key_of(update.message), True)
            await self.send(update.message, "OK: your next message starts a new conversation"
                                            " (and detaches this chat if it is attached).")

    async def cmd_sessions(self, update, ctx):
        try:
            out = await self.cs.list_text(10)
            await self.send(update.message, out.rstrip() or "no sessions yet", pre=True)
        except ClawsessError as e:
            await self.send(update.message, "⚠️ " + e.message)

    async def cmd_status(self, update, ctx):
        key = key_of(update.message)
        await self.send(update.message, await status_text(self.cs, key, key in self.state.fresh))

    async def cmd_model(self, update, ctx):
        key = key_of(update.message)
        async with self.lock(key):
            await self.send(update.message, await model_command(self.cs, key, " ".join(ctx.args)))

    async def cmd_stop(self, update, ctx):
        """Not in the chat's queue: the turn to stop holds it. The turn then says so itself."""
        key = key_of(update.message)
        log.info("%s: /stop", key)
        try:
            text = "Stopped." if await self.cs.stop(key) else "Nothing is running in this chat."
        except ClawsessError as e:
            text = "⚠️ " + e.message
        await self.send(update.message, text)

    # -- turns -------------------------------------------------------------------------------

    def lock(self, key):
        lock = self.locks.get(key)
        if lock is None:
            lock = self.locks[key] = asyncio.Lock()
        return lock

    async def on_text(self, update, ctx):
        message = update.message
        text = message.text or ""
        command = re.match(r"/[A-Za-z0-9_]+@([A-Za-z0-9_]+)", text)
        if command and command.group(1).lower() != self.tg.username.lower():
            return  # a command for another bot in this group
        if message.chat.type != ChatType.PRIVATE:
            text = re.sub(rf"@{re.escape(self.tg.username)}\b", "", text, flags=re.I).strip() or text
        mode, body = self.mid.split(text, self.tg.username)
        if mode != "queue" and not body:
            return await self.send(message, self.mid.usage(mode))
        asked = open_question(self.asks, key_of(message)) if mode == "queue" else None
        if asked is not None:  # Claude waits for an answer: this is it, in words
            verdict, answered = await answer_in_words(self.cs, self.asks, asked, text)
            log.info("%s: answered %s in words: %s", key_of(message), asked.request_id, verdict)
            if answered:
                await self.close_ask(asked, verdict)
            return await self.send(message, verdict)
        await self.turn(message, body, mode=mode)

    async def on_photo(self, update, ctx):
        message = update.message
        best = max(message.photo, key=lambda p: (p.file_size or 0, p.width * p.height))
        with tempfile.TemporaryDirectory(prefix="clawsess-bot-") as directory:
            path = os.path.join(directory, "photo.jpg")
            try:
                if (best.file_size or 0) > PHOTO_LIMIT:
                    raise ValueError(f"it is larger than {PHOTO_LIMIT} bytes")
                await (await best.get_file()).download_to_drive(path)
            except (NetworkError, BadRequest, ValueError, OSError) as e:
                log.warning("%s: could not get the photo: %s", key_of(message), e)
                return await self.send(message, f"⚠️ Could not get the photo from Telegram ({e}).")
            caption = (message.caption or "").strip() or "(a photo, sent without a caption)"
            await self.turn(message, caption, images=[path])

    async def on_other(self, update, ctx):
        await self.send(update.message, "I can only read text messages and photos.")

    async def turn(self, message, text, images=(), mode="queue"):
        """A turn for MESSAGE. MODE "queue": after the chat's turns before it (it is told its
        place when it waits); "steer" and "now" go at once (clawsess puts them into, or
        before, the turn in progress)."""
        key = key_of(message)
        if mode != "queue":
            if self.stopping:
                return await self.send(message, STOPPING_TEXT)
            log.info("%s: %s (%d chars)", key, mode, len(text))
            return await self.run(message, key, text, images, mode, False)
        place = self.line.join(key)
        try:
            if place.ahead:
                await self.send(message, self.mid.queued_text(place.ahead))
            async with self.lock(key), self.slots:
                if self.stopping:
                    return await self.send(message, STOPPING_TEXT)
                fresh = key in self.state.fresh
                log.info("%s: turn (%d chars%s%s)", key, len(text), f", {len(images)} images" if images else "",
                         ", new session" if fresh else "")
                if await self.run(message, key, text, images, mode, fresh, place) and fresh:
                    self.state.set_fresh(key, False)
        finally:
            place.leave()

    async def run(self, message, key, text, images, mode, fresh, place=None):
        progress = Progress(lambda text: self.send(message, text),
                            lambda sent, text: self.edit(sent.chat.id, sent.message_id, text),
                            self.cfg.edit_interval, TELEGRAM_LIMIT)
        typing = asyncio.ensure_future(self.typing(message))
        try:
            return await chat_turn(self, key, message, text, progress, mode=mode, images=images,
                                   fresh=fresh, asker=message.from_user and message.from_user.id, place=place)
        finally:
            typing.cancel()

    async def reply(self, message, text):
        return await self.send(message, text)

    async def typing(self, message):
        thread = message.message_thread_id if message.is_topic_message else None
        while True:
            try:
                await self.tg.send_chat_action(message.chat.id, ChatAction.TYPING, message_thread_id=thread)
            except Exception:
                pass
            await asyncio.sleep(4.5)  # Telegram shows "typing" for 5 s

    # -- buttons: permissions, questions, plans ------------------------------------------------

    @staticmethod
    def keyboard(asked):
        return InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=data) for label, data in row]
                                     for row in asked.buttons()])

    async def show_ask(self, message, asked):
        sent = await self.send(message, asked.text, reply_markup=self.keyboard(asked))
        if sent is not None:
            asked.handle = (sent.chat.id, sent.message_id)

    async def close_ask(self, asked, verdict):
        if asked.handle is not None:
            await self.edit(*asked.handle, f"{asked.text}\n\n{verdict}")

    async def on_button(self, update, ctx):
        """A press on a button of a permission request, a question or a plan (by an allowed
        user: see gate). Allow / Deny and Approve / Keep planning work for buttons of an
        earlier run of the bot too: the request id is in the button."""
        query = update.callback_query
        verdict, asked, state = await press(self.cs, self.asks, query.data)
        log.info("chat %s: button %s by user %s: %s", query.message.chat.id, query.data,
                 query.from_user.id, verdict)
        await self.quiet(query.answer((verdict or "")[:200]))
        chat_id, message_id = query.message.chat.id, query.message.message_id
        if state == "picked":
            await self.edit(chat_id, message_id, asked.text, reply_markup=self.keyboard(asked))
        elif state == "closed":
            text = asked.text if asked else (getattr(query.message, "text", None) or "")
            await self.edit(chat_id, message_id, f"{text}\n\n{verdict}")

    # -- polling and shutdown -------------------------------------------------------------------

    async def poll(self, stop):
        """getUpdates from the saved offset; the offset is saved before the answers, so a
        restart (or a crash) never answers a message twice."""
        delay = 1
        while not stop.is_set():
            try:
                updates = await self.tg.get_updates(
                    offset=self.state.offset or None, timeout=self.cfg.poll_timeout,
                    allowed_updates=["message", "callback_query"])
                delay = 1
            except InvalidToken:
                raise
            except RetryAfter as e:
                await asyncio.sleep(e.retry_after if isinstance(e.retry_after, (int, float)) else 5)
                continue
            except Exception as e:  # NetworkError, or an answer it could not read
                log.warning("getUpdates failed (%r); retrying in %s s", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30)
                continue
            if stop.is_set() or not updates:
                continue  # stopped meanwhile: the next start gets these
            self.state.offset = max(u.update_id for u in updates) + 1
            self.state.save()
            for update in updates:
                await self.app.update_queue.put(update)

    async def shutdown(self):
        deadline = time.monotonic() + self.cfg.stop_grace
        self.stopping = True
        while self.running and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        for key, turn in list(self.running.items()):
            log.info("%s: stopping the running turn", key)
            turn.terminate()  # clawsess stops claude and frees the session
        for turn in list(self.side):
            turn.terminate()


async def serve(cfg):
    app = (ApplicationBuilder().token(cfg.token)
           .base_url(f"{cfg.api_url}/bot").base_file_url(f"{cfg.api_url}/file/bot")
           .updater(None).concurrent_updates(True)
           .get_updates_read_timeout(cfg.poll_timeout + 15).build())
    bot = Bot(cfg, app)
    app.add_handler(TypeHandler(Update, bot.gate), group=-1)
    for name, handler in (("start", bot.cmd_help), ("help", bot.cmd_help), ("attach", bot.cmd_attach),
                          ("detach", bot.cmd_detach), ("new", bot.cmd_new), ("sessions", bot.cmd_sessions),
                          ("status", bot.cmd_status), ("model", bot.cmd_model), ("stop", bot.cmd_stop)):
        app.add_handler(CommandHandler(name, handler))
    app.add_handler(CallbackQueryHandler(bot.on_button))
    app.add_handler(MessageHandler(filters.PHOTO, bot.on_photo))
    app.add_handler(MessageHandler(filters.TEXT, bot.on_text))
    app.add_handler(MessageHandler(filters.ALL, bot.on_other))

    async def on_error(update, ctx):
        log.error("update %s: %r", getattr(update, "update_id", None), ctx.error, exc_info=ctx.error)
    app.add_error_handler(on_error)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda s=sig: (log.info("signal %s: stopping", s), stop.set()))
    delay = 1
    while True:  # getMe, retried until it works or the token is refused
        try:
            await app.initialize()
            break
        except InvalidToken as e:
            log.error("Telegram refused the token (%s): check TELEGRAM_BOT_TOKEN", e)
            return 1
        except NetworkError as e:
            log.warning("getMe failed (%s); retrying in %s s", e, delay)
            try:
                await asyncio.wait_for(stop.wait(), delay)
                return 0
            except asyncio.TimeoutError:
                delay = min(delay * 2, 30)
    log.info("connected as @%s", app.bot.username)
    if not cfg.users and not bot.state.owners:
        bot.pairing = Pairing(cfg.pair_ttl)
        log.warning("nobody may use this bot yet. To become its owner, send @%s in a private chat, "
                    "within %d s:  /pair %s", app.bot.username, cfg.pair_ttl, bot.pairing.code)
    await app.start()
    poller = asyncio.ensure_future(bot.poll(stop))
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait([poller, stopped], return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    poller.cancel()
    code = 0
    try:
        await poller
    except asyncio.CancelledError:
        pass
    except InvalidToken as e:
        log.error("Telegram refused the token (%s): check TELEGRAM_BOT_TOKEN", e)
        code = 1
    await bot.shutdown()
    await app.stop()  # waits for the updates being handled (the stopped turns say so)
    await app.shutdown()
    bot.state.save()
    log.info("stopped")
    return code


def main():
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        print(__doc__.strip())
        return 0
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its lines name the token
    return asyncio.run(serve(Config(os.environ)))


if __name__ == "__main__":
    sys.exit(main())
