"""Transactional ids: unique among live workers on a host, the same again after a restart."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from stream.transactions import claim_transactional_id


def test_configured_id_is_used_as_it_is(tmp_path: Path) -> None:
    claimed = claim_transactional_id("billing-worker-7", "group", tmp_path)

    assert claimed.value == "billing-worker-7"


def test_live_workers_claim_different_ids(tmp_path: Path) -> None:
    first = claim_transactional_id(None, "group", tmp_path)
    second = claim_transactional_id(None, "group", tmp_path)

    host = socket.gethostname()
    assert (first.value, second.value) == (f"group-{host}-0", f"group-{host}-1")


def test_released_id_is_claimed_again(tmp_path: Path) -> None:
    first = claim_transactional_id(None, "group", tmp_path)
    claim_transactional_id(None, "group", tmp_path)
    first.release()

    again = claim_transactional_id(None, "group", tmp_path)

    assert again.value == first.value


def test_killed_worker_id_is_reclaimed(tmp_path: Path) -> None:
    # The kernel drops a SIGKILLed process's lock, so a restart reuses the id and fences the
    # transaction the killed worker left open.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from stream.transactions import claim_transactional_id; "
            f"held = claim_transactional_id(None, 'group', Path({str(tmp_path)!r})); "
            "print('claimed', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "claimed"
    while_held = claim_transactional_id(None, "group", tmp_path)
    while_held.release()

    holder.kill()
    holder.wait()
    after_kill = claim_transactional_id(None, "group", tmp_path)

    host = socket.gethostname()
    assert while_held.value == f"group-{host}-1"
    assert after_kill.value == f"group-{host}-0"


def test_groups_claim_ids_independently(tmp_path: Path) -> None:
    billing = claim_transactional_id(None, "billing", tmp_path)
    alerts = claim_transactional_id(None, "alerts", tmp_path)

    assert billing.value.endswith("-0")
    assert alerts.value.endswith("-0")
