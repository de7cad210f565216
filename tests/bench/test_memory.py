import os
import subprocess
import sys
import time

from bench.memory import MemoryProbe, rss_kib

# A child that holds the given MiB of touched memory until it is killed.
HOLDER = "import sys, time; block = b'x' * (int(sys.argv[1]) * 1024 * 1024); print('ready', flush=True); time.sleep(60)"


def test_a_roles_tree_includes_its_children_and_its_peak_is_their_memory():
    # given a child process under this one, holding 200 MiB more than this process (pytest, late in a long
    # run, may itself be past 200 MiB)
    held = 200 + (rss_kib(os.getpid()) or 0) // 1024
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(held)], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        probe = MemoryProbe({"me": os.getpid}, interval=0.05)

        # when it is sampled
        probe.start()
        time.sleep(0.2)
        probe.stop()
    finally:
        child.kill()
        child.wait()

    # then the role counts this process and the child: its largest process is the child, over 200 MiB
    (peak,) = probe.peaks()
    assert peak.processes >= 2
    assert peak.process_rss >= held
    assert peak.process_rss_name.endswith(f"(pid {child.pid})")
    mine = rss_kib(os.getpid())
    assert mine is not None
    assert peak.total_rss >= held + mine / 1024 * 0.5  # this process's RSS may move a little between reads
    if probe.pss_available:
        assert peak.total_pss is not None and peak.total_pss >= held - 10


def test_a_role_with_no_process_has_no_peak():
    probe = MemoryProbe({"gone": lambda: None})
    probe.sample()

    assert probe.peaks() == []
