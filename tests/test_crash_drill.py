"""Crash drill (issue 5): the station process is SIGKILLed at every state boundary and at
random moments over 20 issuances; after restarts every application ends DONE or REJECTED, the
CMS has exactly one return per card made (none lost, none duplicated, no conflicts), no
chip item was written twice and no card was printed twice.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections import Counter

import pytest

from cardstation.personalization.journal import Journal, State
from tests.conftest import ENCODER_READER, PSAM_READER
from tests.world import make_world

pytestmark = [pytest.mark.pcscd, pytest.mark.slow]
CARDS = 20
COMMITS_PER_CARD = 8  # PREVIEWED FED CHIP_WRITTEN VERIFIED RETURN_QUEUED PRINTED EJECTED DONE


def test_sigkill_at_every_boundary_and_random_points(pcsc_context, tmp_path) -> None:
    for reader in (ENCODER_READER, PSAM_READER):
        pcsc_context.wait_for_removal(reader, timeout=5)
    world = make_world(tmp_path, extra_applicants=CARDS)
    rng = random.Random(20261122)
    try:
        pcsc_context.wait_for_card(PSAM_READER, timeout=5)
        ids = world.cms.samples["ready"][:CARDS]
        assert len(ids) == CARDS
        world.load_blank(CARDS)
        config = tmp_path / "cardstation.toml"
        config.write_text(world.toml())
        cmd = [sys.executable, "-m", "cardstation", "run", "--config", str(config),
               "--request-id-prefix", "drill:", "--returns-timeout", "10", *ids]
        # kills at each of the 8 boundaries (after k commits of a run), then at random moments
        plan: list[tuple[str, float]] = [("commits", k) for k in range(1, COMMITS_PER_CARD + 1)]
        plan += [("commits", rng.randint(1, 20)) for _ in range(6)]
        plan += [("timer", rng.uniform(0.8, 3.0)) for _ in range(8)]
        kills = 0
        logs = tmp_path / "runs"
        logs.mkdir()
        for run_no, (kind, amount) in enumerate(plan):
            env = dict(os.environ)
            if kind == "commits":
                env["CARDSTATION_TEST_KILL_AFTER_COMMITS"] = str(int(amount))
            with open(logs / f"{run_no:02d}-{kind}-{amount:.2f}.log", "wb") as out:
                proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
            try:
                proc.wait(timeout=amount if kind == "timer" else 120)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            if proc.returncode == -signal.SIGKILL:
                kills += 1
            elif proc.returncode == 0:
                break
        final = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert final.returncode == 0, final.stdout[-2000:] + final.stderr[-2000:]
        assert kills >= 10

        journal = Journal(world.data_dir / "journal.sqlite")
        issuances = journal.issuances(limit=1000)
        journal.close()
        assert Counter(i.id_number for i in issuances) == Counter(ids)  # one job per person
        assert {i.state for i in issuances} <= {State.DONE, State.REJECTED}
        done = {i.id_number for i in issuances if i.state is State.DONE}
        ledger = world.cms.ledger(photos=False)
        returned = Counter(r["record"]["id_number"] for r in ledger["returns"])
        assert set(returned) == done and set(returned.values()) == {1}
        assert not ledger["conflicts"]
        for chip in world.chips:
            assert all(n == 1 for n in chip.writes.values()), chip.writes
        assert len(world.model.output_hopper) == len(done)
        printed = Counter(record.card_serial for record in world.model.print_log)
        assert set(printed.values()) <= {1}, printed  # no face printed twice on one card
    finally:
        world.stop()
        for reader in (ENCODER_READER, PSAM_READER):
            pcsc_context.wait_for_removal(reader, timeout=5)
