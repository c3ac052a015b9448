"""Transactional ids for exactly-once workers: stable across restarts, unique on a host.

Kafka fences a transactional producer when another one initialises the same transactional id:
the old one can no longer commit, and its open transaction is aborted at once. A worker that
restarts under its previous id therefore cannot leave a zombie behind, while two live workers
must never share an id, or they would fence each other in turn.
"""

from __future__ import annotations

import fcntl
import logging
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from streamscore.errors import StreamscoreError

logger = logging.getLogger(__name__)

# More workers of one group than this on one host is a configuration mistake.
MAX_WORKERS_PER_HOST = 256


@dataclass
class TransactionalId:
    """A claimed transactional id; the claim lasts until `release` or the process ends."""

    value: str
    lock: IO[str] | None = None

    def release(self) -> None:
        """Give the id back, so that another worker on this host may claim it."""
        if self.lock is not None:
            self.lock.close()
            self.lock = None


def claim_transactional_id(
    configured: str | None, group_id: str, state_dir: Path
) -> TransactionalId:
    """Return the configured id, or claim `GROUP-HOST-N` with the lowest free N.

    A claim is an exclusive `flock` on `STATE_DIR/transactional-ids/GROUP-N.lock`. The kernel
    drops the lock when its holder dies, even by SIGKILL, so the restarted worker claims the
    same N again. Workers that share a host must share `state_dir` for this to work; in
    containers each host name is different anyway.

    Raises:
        StreamscoreError: every N up to MAX_WORKERS_PER_HOST is held, or the lock directory
            cannot be created.
    """
    if configured is not None:
        return TransactionalId(configured)
    directory = state_dir / "transactional-ids"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StreamscoreError(
            f"cannot create {directory} to claim a transactional id: {exc.strerror}; "
            f"set worker.transactional_id or state_dir"
        ) from exc
    host = socket.gethostname()
    for number in range(MAX_WORKERS_PER_HOST):
        lock = (directory / f"{group_id}-{number}.lock").open("a", encoding="utf-8")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        value = f"{group_id}-{host}-{number}"
        logger.info("transactional id claimed transactional_id=%s", value)
        return TransactionalId(value, lock)
    raise StreamscoreError(
        f"all {MAX_WORKERS_PER_HOST} transactional ids of group {group_id!r} on this host are "
        f"held by running workers; set worker.transactional_id to choose one"
    )
