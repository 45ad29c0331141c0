"""How the ray executor hands units to its workers (engine/ray.py `_Flight`), without a Ray: a fake one records
which worker got which unit."""
from types import SimpleNamespace

from curate.engine.ray import IN_FLIGHT_PER_WORKER, _Flight


class _Actor:
    def __init__(self, name: str, log: list):
        self.run = SimpleNamespace(remote=lambda token, box, unit: log.append((name, unit)) or (name, unit))


def _flight(n_units: int, names: tuple[str, ...] = ("a", "b")) -> tuple[_Flight, list]:
    log: list = []
    actors = [_Actor(n, log) for n in names]
    fake_ray = SimpleNamespace(put=lambda x: x, get=lambda ref: {}, exceptions=SimpleNamespace(RayError=RuntimeError))
    executor = SimpleNamespace(ray=fake_ray, _shape=lambda task: (1.0, 0.0), _pool=lambda task, n: actors)
    return _Flight(executor, SimpleNamespace(), list(range(n_units))), log


def _queued(flight: _Flight) -> dict:
    per: dict = {}
    for unit, actor, _ in flight.pending.values():
        per.setdefault(id(actor), []).append(unit)
    return per


def test_units_queue_behind_busy_workers_only_while_more_are_left_than_workers():
    flight, log = _flight(8)
    flight.fill()
    assert log == [("a", 0), ("b", 1), ("a", 2), ("b", 3)]  # two per worker while plenty are left
    assert sorted(len(q) for q in _queued(flight).values()) == [IN_FLIGHT_PER_WORKER] * 2

    def finish(ref: tuple) -> None:
        flight.settle(ref)
        flight.submit()

    finish(("a", 0))
    finish(("b", 1))
    assert log[4:] == [("a", 4), ("b", 5)]
    # two units are left for two workers: neither queues behind a busy worker, each goes to the first free one
    finish(("a", 2))
    finish(("b", 3))
    assert len(log) == 6
    finish(("b", 5))
    assert log[-1] == ("b", 6)
    finish(("b", 6))
    assert log[-1] == ("b", 7) and flight.left == 0


def test_a_tail_unit_waits_for_a_free_worker_rather_than_queue():
    flight, log = _flight(3)
    flight.fill()
    assert log == [("a", 0), ("b", 1)]  # unit 2 is not queued behind a busy worker
    flight.settle(("b", 1))
    flight.submit()
    assert log[-1] == ("b", 2)
