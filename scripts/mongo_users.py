"""The stack's MongoDB-wire user, written into SecantusDB's data files with no server running.

`python scripts/mongo_users.py DATA_DIR` (the Python that has SecantusDB; scripts/stack.py runs it before it
starts the server with `--auth`): reads `user\\npassword` on stdin, opens the WiredTiger store itself (its
single-writer lock: it fails at once if a server holds the directory), and runs the server's own
`createUser` (role root on admin) or, for a known user, `updateUser` with the password, through the same
command handler the wire would reach. Nothing listens meanwhile, so no other local user can reach the
store before its credentials are enforced. Prints one JSON list: the other users the store holds
(`user@db` and their roles), for `up` to report.
"""

from __future__ import annotations

import json
import sys

from secantus.commands import CommandContext, dispatch
from secantus.cursors import CursorRegistry
from secantus.storage import Storage


def provision(data_dir: str, user: str, password: str) -> list[str]:
    storage = Storage(data_dir)
    try:
        context = CommandContext(connection_id=0, storage=storage, cursors=CursorRegistry(), db_name="admin")
        command = (
            {"updateUser": user, "pwd": password}
            if storage.get_user("admin", user)
            else {"createUser": user, "pwd": password, "roles": ["root"]}
        )
        reply = dispatch(command, context)
        if reply.get("ok") != 1:
            raise SystemExit(f"{next(iter(command))} {user}@admin refused: {reply.get('errmsg')}")
        return [
            f"{record['user']}@{record['db']} ({', '.join(_roles(record))})"
            for record in storage.list_users(limit=1000)
            if (record.get("db"), record.get("user")) != ("admin", user)
        ]
    finally:
        storage.close()


def _roles(record: dict) -> list[str]:
    return [f"{role.get('role')}@{role.get('db')}" for role in record.get("roles", [])]


if __name__ == "__main__":
    name, secret = sys.stdin.read().split("\n", 1)
    print(json.dumps(provision(sys.argv[1], name, secret)))
