#!/usr/bin/env python3
"""A Discord bot that talks to Claude Code through clawsess, on discord.py.

A channel is one clawsess key, discord:<guild>:<channel>, and each thread its own,
discord:<guild>:<channel>:<thread> (a DM: discord:dm:<channel>); threads run in parallel, the
messages of one key one after the other. Archiving a thread ends its warm claude; deleting it
forgets its key. Slash commands /attach /detach /new /sessions /status /model /stop; a turn's tools
show in one message edited as they come; Allow / Deny buttons for tool calls that need
permission, a question of Claude's its options as buttons (or a reply in words), a plan
Approve / Keep planning; image attachments go to Claude; replies are split at 2,000
characters without breaking a code block. A message sent while Claude works waits for its
turn (the channel is told its place in line); one that starts with ! goes into the running
turn, one that starts with /now stops it and runs now.

Closed by default: it answers only ALLOWED_USERS and its owner. With neither it logs a
one-time pairing code at start; `/pair CODE` in a DM with the bot makes that user the owner
(kept in BOT_STATE). In servers it hears allowed users only when they mention it or reply to
it. A stranger gets one refusal per channel and nothing runs. Buttons (Allow / Deny, a
question's options, a plan's), and an answer in words: only the allowed user who asked, or
an owner.

Settings (environment):

  DISCORD_BOT_TOKEN   the bot's token (Developer Portal > your app > Bot; turn on the
                      Message Content intent there) (required)
  ALLOWED_USERS       comma-separated Discord user ids the bot obeys (besides its owner)
  BOT_PAIR_TTL        seconds the pairing code works (default 600)
  BOT_CWD             working directory of new sessions (default: the current dir)
  CLAWSESS            the clawsess executable (default: clawsess on PATH)
  BOT_STATE           state file: owners, pending /new (default
                      ~/.local/state/clawsess/discord-bot-<token hash>.json)
  BOT_WAIT            seconds a turn waits for a session busy elsewhere (default 60)
  BOT_MAX_PARALLEL    turns running at once (default 4)
  BOT_STOP_GRACE      seconds running turns may finish after SIGTERM/SIGINT (default 10)
  BOT_RUN_ARGS        extra `clawsess run` arguments, split like a shell (operator config)
  BOT_WARM            how long a key's claude stays up after its turn (default 10m; 0: off)
  BOT_ASK             1 (default): Allow / Deny buttons for tool calls; 0: they are denied
  BOT_ASK_TIMEOUT     seconds a permission request waits for a button (default 300)
  BOT_EDIT_INTERVAL   least seconds between two edits of a progress message (default 1.5)
  BOT_STEER_PREFIX    a message starting with it goes into the running turn (default !;
                      empty: off)
  BOT_NOW_PREFIX      a message starting with it stops the running turn and runs now
                      (default /now; empty: off)
  DISCORD_API_URL     REST API base (default https://discord.com/api/v10; tests: a stand-in)
  DISCORD_GATEWAY_URL gateway websocket (default wss://gateway.discord.gg/; tests: a stand-in)

Run: DISCORD_BOT_TOKEN=... python3 discord_bot.py   (then DM the bot /pair CODE from the log)
"""

import asyncio
import hashlib
import logging
import os
import re
import shlex
import signal
import sys
import tempfile
import time
import weakref
from typing import Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bot_common import (STOPPING_TEXT, MidTurn, Pairing, Progress, answer_in_words,  # noqa: E402
                        Asks, Line, chat_turn, ids, model_command, number, open_question, press, read_json,
                        shorten, status_text, write_json)
from clawsess_client import Clawsess, ClawsessError, topic_text  # noqa: E402

DISCORD_LIMIT = 2000
IMAGE_LIMIT = 5 * 1024 * 1024
log = logging.getLogger("discord_bot")


def split_message(text, limit=DISCORD_LIMIT):
    """TEXT in pieces of at most LIMIT characters, cut at a line break (else a space) in the
    second half of a piece. A code block cut in two is closed at the end of one piece and
    opened again, with its language, at the start of the next."""
    pieces, fence = [], None  # fence: the ``` line of the block open at the cut
    while True:
        head = fence + "\n" if fence else ""
        room = limit - len(head) - 4  # room for a closing "\n```"
        if len(head) + len(text) <= limit:
            piece, text = head + text, ""
        else:
            cut = text.rfind("\n", 0, room + 1)
            if cut < room // 2:
                cut = text.rfind(" ", 0, room + 1)
            if cut < room // 2:
                cut = room
            piece, text = head + text[:cut], text[cut:]
            text = text[1:] if text[:1] in ("\n", " ") else text
        open_fence = None
        for line in piece.split("\n"):
            if line.lstrip().startswith("```"):
                open_fence = None if open_fence else line.strip()
        if open_fence and text:
            piece += "\n```"
        if piece.strip():
            pieces.append(piece)
        fence = open_fence if text else None
        if not text:
            return pieces


# ---------------------------------------------------------------------------------------
# Settings and state (as telegram_bot.py's)


class Config:
    def __init__(self, env):
        self.token = env.get("DISCORD_BOT_TOKEN", "").strip()
        if not self.token:
            raise SystemExit("DISCORD_BOT_TOKEN is not set (see --help)")
        try:
            self.clawsess = Clawsess(env.get("CLAWSESS", "clawsess"))
        except ClawsessError as e:
            raise SystemExit(f"{e} (set CLAWSESS, or run ./install.sh)")
        self.cwd = os.path.abspath(env.get("BOT_CWD") or os.getcwd())
        if not os.path.isdir(self.cwd):
            raise SystemExit(f"BOT_CWD {self.cwd} is not a directory")
        self.clawsess.cwd = self.cwd
        self.users = ids(env, "ALLOWED_USERS")
        self.pair_ttl = number(env, "BOT_PAIR_TTL", 600, 1)
        digest = hashlib.sha256(self.token.encode()).hexdigest()[:12]
        default = os.path.join(os.path.expanduser("~"), ".local", "state", "clawsess",
                               f"discord-bot-{digest}.json")
        self.state_path = os.path.abspath(env.get("BOT_STATE") or default)
        self.wait = number(env, "BOT_WAIT", 60)
        self.max_parallel = int(number(env, "BOT_MAX_PARALLEL", 4, 1))
        self.stop_grace = number(env, "BOT_STOP_GRACE", 10)
        self.run_args = shlex.split(env.get("BOT_RUN_ARGS", ""))
        self.warm = env.get("BOT_WARM", "10m").strip() or "0"
        self.ask = env.get("BOT_ASK", "1").strip() not in ("0", "no", "false", "")
        self.ask_timeout = number(env, "BOT_ASK_TIMEOUT", 300, 1)
        self.edit_interval = number(env, "BOT_EDIT_INTERVAL", 1.5)
        self.api_url = env.get("DISCORD_API_URL", "").rstrip("/")
        self.gateway_url = env.get("DISCORD_GATEWAY_URL", "")
        self.mid = MidTurn(env)


class State:
    """The owners and the keys whose next message starts a new session (mode 0600)."""

    def __init__(self, path):
        self.path = path
        data = read_json(path)
        self.fresh = set(data.get("fresh", []))
        self.owners = {int(x) for x in data.get("owners", [])}
        # The questions open when it was saved (see bot_common.Asks), until the bot takes them.
        self.kept_asks = data.get("asks", [])
        self.asks = None

    def save(self):
        write_json(self.path, {"fresh": sorted(self.fresh), "owners": sorted(self.owners), "asks": self.asks.saved() if self.asks is not None else self.kept_asks})


# ---------------------------------------------------------------------------------------
# The bot

import discord  # noqa: E402
from discord import app_commands  # noqa: E402


def key_of(channel) -> str:
    if isinstance(channel, discord.Thread):
        return f"discord:{channel.guild.id}:{channel.parent_id}:{channel.id}"
    guild = getattr(channel, "guild", None)
    return f"discord:{guild.id}:{channel.id}" if guild else f"discord:dm:{channel.id}"


async def may_answer(interaction, asker) -> bool:
    """Only an owner, or the allowed user whose message asked, answers Claude (a button of
    Allow / Deny, a question's option, a plan's); others are told so, and nothing happens."""
    bot = interaction.client
    user = interaction.user.id
    if user in bot.state.owners or (user == asker and bot.allowed(interaction.user)):
        return True
    log.warning("button press by user %s ignored (not the asker %s, not an owner)", user, asker)
    await interaction.response.send_message(
        "Only the user who asked, or the bot's owner, can answer this.", ephemeral=True)
    return False


async def pressed(interaction, data):
    """Answers the press of the button with DATA (bot_common.Asked's) and shows the result."""
    bot = interaction.client
    verdict, asked, state = await press(bot.cs, bot.asks, data)
    log.info("button %s by user %s: %s", data, interaction.user.id, verdict)
    if state == "picked":
        await interaction.response.edit_message(view=bot.view(asked))
    elif state == "closed":
        text = asked.text if asked is not None else interaction.message.content
        await interaction.response.edit_message(content=shorten(f"{text}\n\n{verdict}", DISCORD_LIMIT),
                                                view=None)
    else:
        await interaction.response.send_message(verdict or "That button does nothing.", ephemeral=True)


class Decision(discord.ui.DynamicItem[discord.ui.Button],
               template=r"clawsess:(?P<decision>allow|deny):(?P<asker>[0-9]+):(?P<request>[0-9a-f-]+)"):
    """An Allow / Deny button (Approve / Keep planning for a plan). Everything it needs is in
    its custom_id, so the buttons of a bot that was restarted meanwhile still work."""

    def __init__(self, decision: str, asker: int, request_id: str, label: Optional[str] = None):
        self.decision, self.asker, self.request_id = decision, asker, request_id
        super().__init__(discord.ui.Button(
            label=label or ("Allow" if decision == "allow" else "Deny"),
            style=discord.ButtonStyle.success if decision == "allow" else discord.ButtonStyle.danger,
            custom_id=f"clawsess:{decision}:{asker}:{request_id}"))

    @classmethod
    async def from_custom_id(cls, interaction, item, match):
        return cls(match["decision"], int(match["asker"]), match["request"])

    async def interaction_check(self, interaction) -> bool:
        return await may_answer(interaction, self.asker)

    async def callback(self, interaction):
        await pressed(interaction, f"{self.decision}:{self.request_id}")


class Choice(discord.ui.DynamicItem[discord.ui.Button],
             template=r"clawsess:q:(?P<asker>[0-9]+):(?P<request>[0-9a-f-]+):(?P<what>send|[0-9]+:[0-9]+)"):
    """An option of a question of Claude's (or its Send button)."""

    def __init__(self, asker: int, request_id: str, what: str, label: str = "?", chosen: bool = False):
        self.asker, self.request_id, self.what = asker, request_id, what
        style = discord.ButtonStyle.success if chosen else discord.ButtonStyle.primary if what == "send" \
            else discord.ButtonStyle.secondary
        super().__init__(discord.ui.Button(label=label, style=style,
                                           custom_id=f"clawsess:q:{asker}:{request_id}:{what}"))

    @classmethod
    async def from_custom_id(cls, interaction, item, match):
        return cls(int(match["asker"]), match["request"], match["what"])

    async def interaction_check(self, interaction) -> bool:
        return await may_answer(interaction, self.asker)

    async def callback(self, interaction):
        await pressed(interaction, f"q:{self.request_id}:{self.what}")


class Bot(discord.Client):
    def __init__(self, cfg: Config):
        intents = discord.Intents.default()
        intents.message_content = True
        super().__init__(intents=intents)
        self.cfg, self.cs = cfg, cfg.clawsess
        self.state = State(cfg.state_path)
        self.tree = app_commands.CommandTree(self)
        self.pairing: Optional[Pairing] = None
        self.refused = set()
        self.locks = weakref.WeakValueDictionary()
        self.slots = asyncio.Semaphore(cfg.max_parallel)
        self.running = {}  # key -> its clawsess Turn
        self.side = set()  # Turns of messages that steer or interrupt (not in a key's line)
        self.line = Line()  # each key's messages running or waiting
        self.interrupted = {}  # key -> what interrupted its running turn
        # request_id -> Asked: a message with buttons; the questions kept in the state file.
        self.asks = Asks(self.state.save)
        self.asks.restore(self.state.kept_asks, cfg.ask_timeout + 60)
        self.state.asks = self.asks
        self.mid = cfg.mid
        self.stopping = False
        self.add_commands()

    def allowed(self, user) -> bool:
        return user.id in self.cfg.users or user.id in self.state.owners

    def lock(self, key):
        lock = self.locks.get(key)
        if lock is None:
            lock = self.locks[key] = asyncio.Lock()
        return lock

    async def setup_hook(self):
        self.add_dynamic_items(Decision, Choice)
        await self.tree.sync()

    async def on_ready(self):
        log.info("connected as %s (id %s)", self.user, self.user.id)
        if not self.cfg.users and not self.state.owners and self.pairing is None:
            self.pairing = Pairing(self.cfg.pair_ttl)
            log.warning("nobody may use this bot yet. To become its owner, send %s in a DM, "
                        "within %d s:  /pair %s", self.user, self.cfg.pair_ttl, self.pairing.code)

    # -- messages -----------------------------------------------------------------------------

    def addressed(self, message) -> bool:
        if message.guild is None:
            return True
        if self.user in message.mentions:
            return True
        ref = message.reference
        resolved = ref.resolved if ref is not None else None
        return isinstance(resolved, discord.Message) and resolved.author.id == self.user.id

    async def on_message(self, message):
        if message.author.bot:
            return
        text = message.content or ""
        if re.match(r"/pair(\s|$)", text):
            return await self.pair(message, text[5:].strip())
        if not self.addressed(message):
            return
        if not self.allowed(message.author):
            log.warning("refused user %s in channel %s (not allowed)", message.author.id, message.channel.id)
            if message.channel.id not in self.refused:
                self.refused.add(message.channel.id)
                await self.send(message, f"Sorry, I only answer my owner (your user id is "
                                         f"{message.author.id}; the owner can allow it with ALLOWED_USERS).")
            return
        if self.user is not None:
            text = re.sub(rf"<@!?{self.user.id}>", "", text).strip()
        images = [a for a in message.attachments if (a.content_type or "").startswith("image/")]
        if not text and not images:
            return await self.send(message, "I can only read text messages and images.")
        mode, body = self.mid.split(text)
        if mode != "queue" and not body and not images:
            return await self.send(message, self.mid.usage(mode))
        asked = open_question(self.asks, key_of(message.channel)) if mode == "queue" and text else None
        if asked is not None and (message.author.id == asked.asker or message.author.id in self.state.owners):
            verdict, answered = await answer_in_words(self.cs, self.asks, asked, text)
            log.info("%s: answered %s in words: %s", key_of(message.channel), asked.request_id, verdict)
            if answered:
                await self.close_ask(asked, verdict)
            return await self.send(message, verdict)
        await self.turn(message, body or "(an image, sent without a text)", images, mode)

    async def pair(self, message, code):
        if message.guild is not None:
            if message.channel.id not in self.refused:
                self.refused.add(message.channel.id)
                await self.send(message, "Pairing works only in a DM with me.")
            return
        if self.pairing is not None and self.pairing.take(code):
            self.state.owners.add(message.author.id)
            self.state.save()
            self.pairing = None
            log.warning("paired: user %s is now the owner", message.author.id)
            await self.send(message, "Paired: you are my owner now.")
        else:
            log.warning("pairing: wrong or used code from user %s", message.author.id)
            await self.send(message, "That code does not work (wrong, used or expired).")

    async def send(self, message, text, **extra):
        """TEXT as replies to MESSAGE, split to Discord's limit; the last message sent."""
        sent = None
        for n, piece in enumerate(split_message(text or "(empty reply)")):
            try:
                if n == 0:
                    sent = await message.reply(piece, mention_author=False, **extra)
                else:
                    sent = await message.channel.send(piece, **extra)
            except discord.HTTPException as e:
                log.error("sending to %s: %s", message.channel.id, e)
                return sent
        return sent

    async def turn(self, message, text, attachments=(), mode="queue"):
        """A turn for MESSAGE. MODE "queue": after the key's turns before it (it is told its
        place when it waits); "steer" and "now" go at once (clawsess puts them into, or
        before, the turn in progress)."""
        key = key_of(message.channel)
        if mode != "queue":
            log.info("%s: %s (%d chars)", key, mode, len(text))
            return await self.with_images(key, message, text, attachments, mode, False)
        place = self.line.join(key)
        try:
            if place.ahead:
                await self.send(message, self.mid.queued_text(place.ahead))
            async with self.lock(key), self.slots:
                fresh = key in self.state.fresh
                log.info("%s: turn (%d chars%s%s)", key, len(text),
                         f", {len(attachments)} images" if attachments else "", ", new session" if fresh else "")
                if await self.with_images(key, message, text, attachments, mode, fresh, place) and fresh:
                    self.state.fresh.discard(key)
                    self.state.save()
        finally:
            place.leave()

    async def with_images(self, key, message, text, attachments, mode, fresh, place=None):
        """Downloads ATTACHMENTS, runs the turn with them; whether it answered."""
        if self.stopping:
            await self.send(message, STOPPING_TEXT)
            return False
        with tempfile.TemporaryDirectory(prefix="clawsess-bot-") as directory:
            images = []
            for n, a in enumerate(attachments):
                if a.size > IMAGE_LIMIT:
                    await self.send(message, f"⚠️ {a.filename} is larger than 5 MB.")
                    return False
                path = os.path.join(directory, f"{n}-{re.sub(r'[^A-Za-z0-9._-]', '_', a.filename)}")
                try:
                    await a.save(path)
                except discord.HTTPException as e:
                    await self.send(message, f"⚠️ Could not get {a.filename} from Discord ({e}).")
                    return False
                images.append(path)
            progress = Progress(lambda text: self.send(message, text), self.edit_progress,
                                self.cfg.edit_interval, DISCORD_LIMIT)
            async with message.channel.typing():
                return await chat_turn(self, key, message, text, progress, mode=mode, images=images,
                                       fresh=fresh, asker=message.author.id, place=place)

    async def reply(self, message, text):
        return await self.send(message, text)

    @staticmethod
    async def edit_progress(sent, text):
        try:
            await sent.edit(content=text)  # discord.py waits out rate limits itself
        except discord.HTTPException as e:
            log.warning("progress message in %s: %s", sent.channel.id, e)
            return 5
        return 0

    def view(self, asked):
        """The buttons of ASKED (bot_common.Asked): a row each, as it gives them."""
        view = discord.ui.View(timeout=None)
        for n, row in enumerate(asked.buttons()):
            for label, data in row:
                kind, _, rest = data.partition(":")
                if kind == "q":
                    what = rest.partition(":")[2]
                    item = Choice(asked.asker or 0, asked.request_id, what, label, label.startswith("✅"))
                else:
                    item = Decision(kind, asked.asker or 0, asked.request_id, label)
                item.item.row = n
                view.add_item(item)
        return view

    async def show_ask(self, message, asked):
        sent = await self.send(message, shorten(asked.text, DISCORD_LIMIT), view=self.view(asked))
        asked.handle = sent

    async def close_ask(self, asked, verdict):
        if asked.handle is not None:
            try:
                await asked.handle.edit(content=shorten(f"{asked.text}\n\n{verdict}", DISCORD_LIMIT), view=None)
            except discord.HTTPException as e:
                log.warning("closing the question %s: %s", asked.request_id, e)

    # -- threads --------------------------------------------------------------------------------

    async def on_raw_thread_update(self, payload):
        """Archived: its warm claude ends (the session stays; a new message continues it)."""
        if not (payload.data.get("thread_metadata") or {}).get("archived"):
            return
        key = f"discord:{payload.guild_id}:{payload.parent_id}:{payload.thread_id}"
        try:
            current = await self.cs.current(key)
            if current is not None:
                log.info("%s: thread archived, cooling its session", key)
                await self.cs.cool(str(current["session_id"]))
        except ClawsessError as e:
            log.warning("%s: cool: %s", key, e.message)

    async def on_raw_thread_delete(self, payload):
        """Deleted: its key is forgotten (the session itself stays listed)."""
        key = f"discord:{payload.guild_id}:{payload.parent_id}:{payload.thread_id}"
        log.info("%s: thread deleted, forgetting its key", key)
        try:
            await self.cs.forget(key)
        except ClawsessError as e:
            log.warning("%s: forget: %s", key, e.message)

    # -- slash commands ---------------------------------------------------------------------------

    def add_commands(self):
        tree, bot = self.tree, self

        async def check(interaction) -> bool:
            if bot.allowed(interaction.user):
                return True
            log.warning("refused /%s from user %s", interaction.command and interaction.command.name,
                        interaction.user.id)
            await interaction.response.send_message(
                f"Sorry, I only answer my owner (your user id is {interaction.user.id}).", ephemeral=True)
            return False
        tree.interaction_check = check

        async def reply(interaction, text):
            pieces = split_message(text)
            await interaction.followup.send(pieces[0]) if interaction.response.is_done() \
                else await interaction.response.send_message(pieces[0])
            for piece in pieces[1:]:
                await interaction.followup.send(piece)

        @tree.command(description="Continue a session started elsewhere (a name or id from /sessions)")
        async def attach(interaction, name: Optional[str] = None):
            key = key_of(interaction.channel)
            if name and (len(name.split()) != 1 or name.startswith("-")):
                return await reply(interaction, "Usage: /attach NAME (a session name or id; see /sessions)")
            await interaction.response.defer(thinking=True)
            try:
                done = await bot.cs.attach(key, name)
            except ClawsessError as e:
                return await reply(interaction, "⚠️ " + e.message)
            label = f" ({done['name']})" if done.get("name") else ""
            await reply(interaction, f"Attached {key} to session {done.get('session_id')}{label} in "
                                     f"{done.get('cwd')}.\n" + topic_text(done.get("topic")))

        @tree.command(description="Back to this channel's own conversation")
        async def detach(interaction):
            try:
                out = await bot.cs.call("detach", "--key", key_of(interaction.channel))
                await reply(interaction, out.strip() or "OK")
            except ClawsessError as e:
                await reply(interaction, "⚠️ " + e.message)

        @tree.command(description="Your next message starts a new conversation")
        async def new(interaction):
            bot.state.fresh.add(key_of(interaction.channel))
            bot.state.save()
            await reply(interaction, "OK: your next message starts a new conversation"
                                     " (and detaches this channel if it is attached).")

        @tree.command(description="Recent sessions")
        async def sessions(interaction):
            try:
                out = await bot.cs.list_text(10)
                await reply(interaction, "```\n" + (out.rstrip().replace("```", "'''") or "no sessions yet") + "\n```")
            except ClawsessError as e:
                await reply(interaction, "⚠️ " + e.message)

        @tree.command(description="Which session this channel talks to, its settings and next reset")
        async def status(interaction):
            key = key_of(interaction.channel)
            await interaction.response.defer(thinking=True)
            await reply(interaction, await status_text(bot.cs, key, key in bot.state.fresh, where="channel"))

        @tree.command(description="The model of this channel's turns (empty: show it; default: back to the default)")
        async def model(interaction, name: Optional[str] = None):
            key = key_of(interaction.channel)
            await interaction.response.defer(thinking=True)
            await reply(interaction, await model_command(bot.cs, key, name or "", where="channel"))

        @tree.command(description="Stop the turn Claude is working on here")
        async def stop(interaction):
            key = key_of(interaction.channel)
            log.info("%s: /stop", key)
            try:
                text = "Stopped." if await bot.cs.stop(key) else "Nothing is running here."
            except ClawsessError as e:
                text = "⚠️ " + e.message
            await reply(interaction, text)

    async def shutdown(self):
        deadline = time.monotonic() + self.cfg.stop_grace
        self.stopping = True
        while self.running and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        for key, turn in list(self.running.items()):
            log.info("%s: stopping the running turn", key)
            turn.terminate()
        for turn in list(self.side):
            turn.terminate()
        while self.running and time.monotonic() < deadline + 15:
            await asyncio.sleep(0.1)


async def serve(cfg):
    if cfg.api_url:
        discord.http.Route.BASE = cfg.api_url
    if cfg.gateway_url:
        import yarl
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(cfg.gateway_url)
    bot = Bot(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda s=sig: (log.info("signal %s: stopping", s), stop.set()))
    runner = asyncio.ensure_future(bot.start(cfg.token))
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait([runner, stopped], return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if runner.done():
        try:
            runner.result()
        except discord.LoginFailure as e:
            log.error("Discord refused the token (%s): check DISCORD_BOT_TOKEN", e)
            code = 1
        except Exception as e:
            log.error("the bot failed: %r", e, exc_info=e)
            code = 1
    await bot.shutdown()
    await bot.close()
    log.info("stopped")
    return code


def main():
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        print(__doc__.strip())
        return 0
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("discord").setLevel(logging.WARNING)
    return asyncio.run(serve(Config(os.environ)))


if __name__ == "__main__":
    sys.exit(main())
