"""Traffic simulator: realistic, deterministic CaseEvent traffic for the Groningen region.

``simulate(addresses, events, seed)`` builds a small world (the region's real municipalities,
plausible postcodes per former municipality, buildings holding one or many addresses, BAG ids whose
prefix is the *creating* municipality, often a pre-merger code), plans case lifecycles per source
with a known share of *planted* rule situations, and returns a :class:`Simulation`: an iterable of
events in the JSON form of :class:`hub.contracts.events.CaseEvent` (dicts; malformed non-JSON lines
are plain ``str``) plus a :class:`Manifest` of what was planted. Iterating twice, or calling again
with the same arguments, yields the same events byte for byte (``random.Random`` with fixed
seeds; no set/hash ordering ever drives generation).

Address forms follow the hub's resolver (``hub.address.resolve``): an event with *only* a
``pand_id`` is a *building* case (NCG strengthening of a whole building: pand + gemeentecode);
every other case is per address, and its postal-form events also carry the address's ``pand_id``
as a register fact (which teaches the register the building's addresses, so building cases reach
every address that had a case of its own). An event carrying only a ``nummeraanduiding_id`` is sent
only after that address was sent with postal fields and the id.

Ground truth: planted sets hold under the rules config given to :func:`simulate` (default
``hub/config/rules.toml``) for the *final* state of the stream. Background traffic is constrained
so that it never makes a rule fire at the end (transient firing along the way is realistic and
allowed): no undecided damage claim where strengthening is active at the end, at most one active
case with a work window per address, no active bottleneck above the mandate. See
``docs/simulator.md``.

Modules: ``world``, ``planner``, ``stream``, ``cli``; this package re-exports the public names.
Pure Python, no Kafka: imports ``hub.engine`` (the rules config) and nothing else of the project.
"""

from connectors.simulator.cli import (
    manifest_to_dict,
    run_simulate_cli,
    write_jsonl,
    write_register_csv,
)
from connectors.simulator.planner import Manifest, Shares
from connectors.simulator.stream import (
    CONTRACT_REASONS,
    DEFAULT_SPAN_DAYS,
    DEFAULT_START,
    Event,
    Item,
    MalformedReason,
    Simulation,
    simulate,
)
from connectors.simulator.world import (
    AREAS,
    MUNICIPALITY_NAMES,
    AddressRef,
    municipality_of_postcode,
)

__all__ = [
    "AREAS",
    "CONTRACT_REASONS",
    "DEFAULT_SPAN_DAYS",
    "DEFAULT_START",
    "MUNICIPALITY_NAMES",
    "AddressRef",
    "Event",
    "Item",
    "MalformedReason",
    "Manifest",
    "Shares",
    "Simulation",
    "manifest_to_dict",
    "municipality_of_postcode",
    "run_simulate_cli",
    "simulate",
    "write_jsonl",
    "write_register_csv",
]
