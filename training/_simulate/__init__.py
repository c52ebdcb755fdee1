"""A traffic simulator with ground truth: persons' web and app signals over days, in time order.

For tests, for training the bundled visitor model, and for accuracy benchmarks. Persons live
in households that share a home address (which their ISP reassigns now and then), work in
offices behind one NAT address, go online through carriers' CGNAT pools and public wifi, and
use several devices: a phone (the shop's app with a `device` id, a browser with a `cookie`),
computers, tablets (some shared by a family). Safari cookies expire after seven days; many
persons never log in; some click newsletters (`email` with the cookie). Each signal carries
the id of the person who really sent it.

    config = SimulationConfig(persons=2_000, days=14, seed=3)
    signals = simulate(config)               # time-ordered SimulatedSignal(signal, person)
    write_jsonl("traffic.jsonl.gz", signals)
    print(summary(read_jsonl("traffic.jsonl.gz")))
"""

from ._config import DEFAULT_END, SimulationConfig
from ._files import read_jsonl, summary, write_jsonl
from ._people import Population, population
from ._traffic import SimulatedSignal, simulate

__all__ = [
    "DEFAULT_END",
    "Population",
    "SimulatedSignal",
    "SimulationConfig",
    "population",
    "read_jsonl",
    "simulate",
    "summary",
    "write_jsonl",
]
