"""Staff accounts for the console from the command line (the first admin starts here).

    make staff-user NAME=anna ROLE=admin      (clinic-staff-user add anna --role admin)
    clinic-staff-user list
    clinic-staff-user password anna           (a new password; anna's sessions end)
    clinic-staff-user reset-second-factor anna (anna lost her phone and her recovery codes)

Admins sign in with a code from an authenticator app too: a new admin sets the app up at
their first sign-in, and so does one whose second factor was reset here.

The password is asked for twice and never shown; it is never taken from the command line,
where `ps` and the shell's history would keep it. With --password-stdin it is read from
standard input instead (for scripts and tests).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence

from common import settings
from staff.service import accounts, db, second_factor


def read_password(from_stdin: bool) -> str | None:
    """The new password: typed twice at a prompt, or one line of standard input."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password (at least %d characters): " % accounts.MIN_PASSWORD_CHARS)
    if getpass.getpass("The same password again: ") != first:
        print("The two passwords were not the same. Nothing was changed; try again.")
        return None
    return first


def main(argv: Sequence[str] | None = None) -> int:
    """Add, list, set a new password or reset a second factor; 1 if something needs fixing."""
    parser = argparse.ArgumentParser(
        prog="clinic-staff-user", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="add a staff account")
    add.add_argument("name")
    add.add_argument("--role", choices=accounts.ROLES, required=True)
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    commands.add_parser("list", help="list the staff accounts")
    password = commands.add_parser("password", help="set a new password")
    password.add_argument("name")
    password.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    reset = commands.add_parser(
        "reset-second-factor", help="remove someone's authenticator app and recovery codes"
    )
    reset.add_argument("name")
    args = parser.parse_args(argv)
    engine = db.engine(settings.current().database_url)
    if args.command == "list":
        users = accounts.list_users(engine)
        print(f"{len(users)} staff account(s)")
        for user in users:
            print(f"  {user.name}  {user.role}{'' if user.active else '  (switched off)'}")
        return 0
    try:
        if args.command == "add":
            secret = read_password(args.password_stdin)
            if secret is None:
                return 1
            user = accounts.create_user(engine, args.name, args.role, secret)
            accounts.audit(engine, "(command line)", "added a staff account", user.name, user.role)
            print(f"{user.name} can now sign in to the staff console as {user.role}.")
            return 0
        user = accounts.get_by_name(engine, args.name)
        if user is None:
            print(f"There is no staff member called {args.name}. `clinic-staff-user list` shows them.")
            return 1
        if args.command == "reset-second-factor":
            second_factor.reset(engine, user.id)
            accounts.audit(engine, "(command line)", "reset a second factor", user.name)
            print(
                f"{user.name}'s second factor was removed and their sessions ended. "
                + (
                    "At their next sign-in they set up their authenticator app again."
                    if user.role == "admin"
                    else "They sign in with their password only until they turn it on again."
                )
            )
            return 0
        secret = read_password(args.password_stdin)
        if secret is None:
            return 1
        accounts.set_password(engine, user.id, secret)
        accounts.audit(engine, "(command line)", "set a new password", user.name)
        print(f"{user.name} has a new password; their open sessions were ended.")
        return 0
    except accounts.AccountError as problem:
        print(f"{problem} Nothing was changed.")
        return 1


if __name__ == "__main__":
    sys.exit(main())
