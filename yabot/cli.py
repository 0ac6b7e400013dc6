"""The `yabot` command: run the service, mint service tokens, migrate the stores, seed the
story, chat with the bot in a terminal."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from yabot.errors import YabotError
from yabot.settings import JwtAlgorithm, load_settings
from yabot.startup import diagnose

_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """``90``, ``90s``, ``15m``, ``1h``, ``7d`` → seconds."""
    match = _DURATION.match(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 3600, 15m, 1h)")
    return int(match.group(1)) * _SECONDS[match.group(2)]


def _run(_: argparse.Namespace) -> int:
    settings = load_settings()  # checked before the application is imported: fast to fail

    from yabot.logs import configure_logging
    from yabot.serving import serve

    configure_logging(settings)
    serve(settings)
    return 0


def _token(args: argparse.Namespace) -> int:
    settings = load_settings()
    secret_file = settings.data_dir / "jwt_secret"
    if (settings.jwt.algorithm is JwtAlgorithm.HS256 and settings.jwt.secret is None
            and not secret_file.exists()):
        # Minting with a secret made up now would give a token no running server accepts.
        print(f"yabot token: no signing secret: JWT_SECRET is unset and {secret_file} does "
              "not exist (the server writes it on its first start in its data directory); "
              "run this where the server runs, or set YABOT_DATA_DIR or JWT_SECRET as the "
              "server has them", file=sys.stderr)
        return 2

    from yabot.api.auth import SCOPES, mint_token

    scopes = [scope for group in args.scope for scope in group.split(",") if scope]
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        print(f"yabot token: unknown scope(s) {', '.join(unknown)}; "
              f"known: {', '.join(SCOPES)}", file=sys.stderr)
        return 2
    print(mint_token(settings, args.sub, scopes, args.ttl, key_id=args.kid))
    return 0


def _migrate(args: argparse.Namespace) -> int:
    settings = load_settings()

    from yabot.logs import configure_logging
    from yabot.stores.migration_command import MigrateOptions, migrate

    configure_logging(settings)
    options = MigrateOptions(check=args.check, dry_run=args.dry_run, to=args.to,
                             mongo_to=args.mongo_to, yes=args.yes, backup=not args.no_backup)
    try:
        return migrate(settings, options)
    except YabotError as exc:
        if diagnose(exc) is not None:
            raise
        print(f"yabot migrate: {exc}", file=sys.stderr)
        return 1


def _chat(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import signal

    from yabot.settings import BotSettings

    # The console is the bot's only front end here: Telegram stays unconnected.
    settings = load_settings(bot=BotSettings().model_copy(
        update={"token": None, "webhook_url": None, "webhook_secret": None}))

    from yabot.bot.console import Console
    from yabot.bot.runner import build_dispatcher
    from yabot.logs import configure_logging
    from yabot.runtime import Runtime
    from yabot.terminal import InputLines

    configure_logging(settings)
    if not args.verbose:
        logging.getLogger().setLevel(logging.WARNING)
    runtime = Runtime(settings)
    runtime.start()
    lines = InputLines(sys.stdin.fileno())
    loop = asyncio.new_event_loop()
    try:
        console = Console(build_dispatcher(runtime.sessions, settings), sys.stdout,
                          user_id=args.user_id, first_name=args.name, language=args.language)
        interactive = sys.stdin.isatty()
        if interactive:
            print("Type a message or a /command; a number presses that button. "
                  "Ctrl-D or Ctrl-C ends.")
        session = loop.create_task(console.run(lines.read_line,
                                               prompt="you> " if interactive else ""))
        # Ctrl-C ends like Ctrl-D, at once and without a traceback, through the loop's own
        # signal handling (a wake-up fd). The kernel may hand SIGINT to any of the actors'
        # threads; Python runs the handler in the main thread only once that runs again, and
        # an idle loop sleeps in select(). With KeyboardInterrupt, `chat` was seen (its
        # stacks, in a test) still asleep there 30 s after a Ctrl-C.
        loop.add_signal_handler(signal.SIGINT, session.cancel)
        try:
            loop.run_until_complete(session)
        except asyncio.CancelledError:
            print()
    finally:
        lines.close()
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
        runtime.stop()
    return 0


def _story(args: argparse.Namespace) -> int:
    from pathlib import Path

    settings = load_settings()

    from yabot.errors import InvalidStory
    from yabot.seed import read_story
    from yabot.story_graph import render_dot, render_text

    folder = Path(args.path) if args.path else settings.story.seed_path
    try:
        story = read_story(folder, settings.story.start_fragment)
    except InvalidStory as exc:
        print(f"yabot story: {exc}", file=sys.stderr)
        return 1
    render = render_dot if args.dot else render_text
    sys.stdout.write(render(story, args.language))
    return 0


def _seed(args: argparse.Namespace) -> int:
    from pathlib import Path

    settings = load_settings()

    from yabot.logs import configure_logging
    from yabot.seed import seed_command

    configure_logging(settings)
    try:
        return seed_command(settings, Path(args.path) if args.path else None, check=args.check)
    except YabotError as exc:
        if diagnose(exc) is not None:
            raise
        print(f"yabot seed: {exc}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yabot", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="serve the API (and the bot, if configured)")
    run.set_defaults(handler=_run)
    token = commands.add_parser("token", help="mint a JWT for an internal service")
    token.add_argument("--sub", required=True, help="the calling service's name")
    token.add_argument("--scope", action="append", required=True,
                       help="scope(s), repeatable or comma-separated: users:read, users:write, "
                            "narrative:read, besitos:write, subscriptions:write")
    token.add_argument("--ttl", type=parse_duration, default=3600, help="lifetime, e.g. 1h")
    token.add_argument("--kid", default=None,
                       help="id of the signing key (default JWT_KEY_ID; JWT_PREVIOUS_KEY_ID "
                            "signs with the previous key during a rotation)")
    token.set_defaults(handler=_token)
    migrate = commands.add_parser(
        "migrate", help="apply pending migrations to the SQL and MongoDB stores, then validate"
    )
    mode = migrate.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="list what is pending; exit 1 if anything is")
    mode.add_argument("--dry-run", action="store_true", help="show what would run; change nothing")
    migrate.add_argument("--to", metavar="REV",
                         help="SQL revision to go to, up or down (`base` = empty); default head")
    migrate.add_argument("--mongo-to", metavar="N", type=int,
                         help="MongoDB step to go to, up or down (0 = none); default the last")
    migrate.add_argument("--yes", action="store_true",
                         help="confirm a downgrade to base, which drops every table (listed "
                              "with their row counts when run without it)")
    migrate.add_argument("--no-backup", action="store_true",
                         help="change the schema without backing the SQL database up first "
                              "(PostgreSQL: pg_dump into YABOT_DATA_DIR/backups; SQLite: a "
                              "copy next to the file)")
    migrate.set_defaults(handler=_migrate)
    chat = commands.add_parser(
        "chat", help="talk to the bot in this terminal (real dispatcher and actors, no Telegram)"
    )
    chat.add_argument("--user-id", type=int, default=1, help="the console user's Telegram id")
    chat.add_argument("--name", default="Console", help="the console user's first name")
    chat.add_argument("--language", default="en", help="the user's Telegram language_code")
    chat.add_argument("--verbose", action="store_true", help="show info logs on stderr")
    chat.set_defaults(handler=_chat)

    story = commands.add_parser(
        "story", help="print the story graph: fragments, choices and their gates (or --dot)")
    story.add_argument("--path", metavar="DIR",
                       help="folder with story.toml and items.toml (default: STORY_SEED_PATH, "
                            "else the story shipped in the package)")
    story.add_argument("--dot", action="store_true",
                       help="write Graphviz dot instead (e.g. | dot -Tsvg > story.svg)")
    story.add_argument("--language", choices=["en", "es"], default="en",
                       help="language of titles and labels")
    story.set_defaults(handler=_story)

    seed = commands.add_parser(
        "seed", help="check the story and shop (STORY_SEED_PATH, else the one shipped) and "
                "load them (idempotent)"
    )
    seed.add_argument("--path", metavar="DIR",
                      help="folder with story.toml and items.toml (default: STORY_SEED_PATH, "
                           "else the story shipped in the package)")
    seed.add_argument("--check", action="store_true",
                      help="only check the story; touch no store")
    seed.set_defaults(handler=_seed)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except YabotError as exc:
        failure = diagnose(exc)
        if failure is None:
            raise
        print(failure.line(), file=sys.stderr)  # the exit code says which kind (yabot.startup)
        return int(failure.exit_code)
    return code


if __name__ == "__main__":
    sys.exit(main())
