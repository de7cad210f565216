"""Benchmark: invoice PDFs rendered per second with the embedded Unicode fonts, beside bare reportlab.

Run from the project root:  .venv/bin/python bench/invoice_pdf.py   (about half a minute; --seconds to change)

No database or broker: it renders invoices from frozen content, as invoicing.documents does for a stored
invoice, in this one process.

  unicode: invoicing.documents.render with DejaVu Sans (+ Droid Sans Fallback), TrueType subsets embedded;
           the fonts are registered (parsed) once per process, as in a worker.
  bare:    the same page through the same code, in reportlab's built-in Helvetica (nothing embedded): what
           reportlab costs without our fonts. The target is unicode >= 90% of bare.
  cjk:     unicode with a different Chinese name per document (a fallback-font subset built per document:
           the worst case), for information.

With --plain, "unicode" uses reportlab's own TTFont for the same font files instead (what
invoicing.documents improves on: every document subsets, compresses and formats its embedded fonts anew).
reportlab keeps one font object per face and process, so the two cannot share a process.

Each case renders a different attendee name per document (so subsetting is not handed the same text
every time). The cases take turns in blocks of 10 documents, timed in CPU seconds of this process, so
that other work on the machine weighs on them alike; the median of the rounds counts.
Peak memory is the Python heap's peak (tracemalloc) while rendering one case, and the process's max RSS.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.machine import Neighbours, describe, measured_on, print_end, print_machine  # noqa: E402
from bench.runtime import say  # noqa: E402

LATIN_NAMES = [
    ("Zoë", "Ødegård"),
    ("Ada", "Lovelace"),
    ("François", "Müller-Lüdenscheidt"),
    ("Łukasz", "Żółkiewski"),
    ("Ingrid", "Bjørnstad"),
    ("José María", "Núñez de Arce"),
    ("Grace", "Hopper"),
    ("Søren", "Kierkegaard"),
]
BLOCK = 10


def cjk_name(index: int) -> tuple[str, str]:
    """A different Chinese name for each document (so each document needs a fallback subset of its own)."""
    return chr(0x4E00 + (index * 7919) % 20000), "".join(chr(0x4E00 + (index * p) % 20000) for p in (104729, 1299709))


def content_for(index: int, names: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    first, last = names[index % len(names)] if names else cjk_name(index)
    number = f"2027-{index + 1:06d}"
    return {
        "title": "Invoice",
        "number": number,
        "issued_on": "2027-01-10",
        "seller": {
            "name": "MICE Events Ltd",
            "address": ["1 Conference Street", "1000 Brussels", "Belgium"],
            "vat_id": "BE0123456789",
        },
        "buyer": {"name": f"{first} {last}", "company": "Konferanse & Søn AS", "email": f"attendee{index}@example.com"},
        "line_item": {
            "slug": "pycon-2027",
            "description": "PyCon 2027: the annual gathering of the Python community",
            "venue": "Lisbon Congress Centre",
            "starts_on": "2027-03-12",
            "ends_on": "2027-03-14",
        },
        "currency": "EUR",
        "net": "100.00",
        "vat_rate": "20.00",
        "vat": "20.00",
        "gross": "120.00",
        "payment": {
            "gateway": "sandbox",
            "reference": f"ch_sandbox_{index:016x}",
            "registration_id": f"6f2b0a5e-1111-4a4a-9b9b-{index:012d}",
        },
    }


def interleaved_round(cases: dict[str, Callable[[int], bytes]], seconds: float, start: int) -> dict[str, float]:
    """Documents per CPU-second of each case over one round of about `seconds` per case.

    The cases take turns in blocks of BLOCK documents, so a noisy neighbour (this machine is shared) slows
    them alike; CPU time of this process (not wall time) leaves out the time others held the cores.
    """
    spent = dict.fromkeys(cases, 0.0)
    done = dict.fromkeys(cases, 0)
    index = start
    while min(spent.values()) < seconds:
        for name, render_case in cases.items():
            began = time.process_time()
            for offset in range(BLOCK):
                render_case(index + offset)
            spent[name] += time.process_time() - began
            done[name] += BLOCK
        index += BLOCK
    return {name: done[name] / spent[name] for name in cases}


def peak_heap(render: Callable[[int], bytes], documents: int) -> float:
    gc.collect()
    tracemalloc.start()
    for index in range(documents):
        render(index)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1024 / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one round of one case")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--plain", action="store_true", help="reportlab's TTFont, without invoicing's caching")
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only")
    os.environ.setdefault("DATABASE_URL", "sqlite:///:memory:")
    import django

    django.setup()
    import reportlab
    from reportlab.pdfbase.ttfonts import TTFont

    from invoicing import documents
    from invoicing.documents import BUILTIN_FONTS, render, unicode_fonts

    if args.plain:
        documents.SubsetCachingTTFont = TTFont  # type: ignore[misc,assignment]
        documents._seed = lambda canvas, fonts: None
    began = time.perf_counter()
    fonts = unicode_fonts()
    registration_ms = (time.perf_counter() - began) * 1000
    cases: dict[str, Callable[[int], bytes]] = {
        "unicode": lambda i: render(content_for(i, LATIN_NAMES), fonts=fonts),
        "bare": lambda i: render(content_for(i, LATIN_NAMES), fonts=BUILTIN_FONTS),
        "cjk": lambda i: render(content_for(i), fonts=fonts),
    }

    neighbours = Neighbours()
    info = describe(neighbours, reportlab=reportlab.Version)  # no database or broker: they say "not used"
    print_machine(info)
    say("fonts: " + ("reportlab's TTFont (--plain)" if args.plain else "invoicing.documents.SubsetCachingTTFont"))
    say(f"font registration (once per process): {registration_ms:.0f} ms")
    for render_case in cases.values():  # warm up: imports, caches, the first subsets
        for index in range(20):
            render_case(index)

    rates: dict[str, list[float]] = {name: [] for name in cases}
    for round_number in range(args.rounds):
        for name, per_second in interleaved_round(cases, args.seconds, start=round_number * 100_000).items():
            rates[name].append(per_second)
        say(f"round {round_number + 1}: " + ", ".join(f"{name} {values[-1]:.0f}/s" for name, values in rates.items()))
    sizes = {name: len(render_case(0)) for name, render_case in cases.items()}

    heaps = {name: peak_heap(render_case, 50) for name, render_case in cases.items()}
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    say()
    say("docs/s: per CPU-second of this process, median of the rounds")
    columns = ("docs/s (median)", 16), ("ms/doc", 8), ("min..max docs/s", 17), ("PDF bytes", 10), ("heap peak", 10)
    say(f"{'case':<9} " + " ".join(f"{title:>{width}}" for title, width in columns))
    for name in cases:
        median = statistics.median(rates[name])
        spread = f"{min(rates[name]):.0f}..{max(rates[name]):.0f}"
        say(f"{name:<9} {median:>16.0f} {1000 / median:>8.2f} {spread:>17} {sizes[name]:>10,} {heaps[name]:>8.1f} MB")
    ratio = statistics.median(rates["unicode"]) / statistics.median(rates["bare"])
    say(f"process max RSS: {max_rss:.0f} MB")
    say(f"unicode / bare: {ratio:.1%} (target >= 90%): {'met' if ratio >= 0.9 else 'NOT met'}")
    print_end(neighbours)
    say(f"\n{measured_on(info)} reportlab {reportlab.Version}. {neighbours.verdict()}")


if __name__ == "__main__":
    main()
