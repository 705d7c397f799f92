"""The PIN store: hashing, defaults, lockout with time passed in."""

import pytest

from appliance.history import History
from appliance.pins import DEFAULT_PINS, PinStore, check_hash, hash_pin


@pytest.fixture
def pins(tmp_path):
    h = History(tmp_path / "h.sqlite3")
    yield PinStore(h)
    h.close()


def test_defaults_and_change(pins):
    assert DEFAULT_PINS == {"clinic": "1234", "service": "7391"}
    assert pins.is_default("clinic") and pins.is_default("service")
    assert pins.verify("clinic", "1234", 0.0)
    assert not pins.verify("clinic", "7391", 0.0)
    assert pins.verify("service", "7391", 0.0)
    pins.change("clinic", "98765")
    assert not pins.is_default("clinic")
    assert not pins.verify("clinic", "1234", 1.0)
    assert pins.verify("clinic", "98765", 1.0)
    stored = pins.history.get_setting("pin.clinic")
    assert stored.startswith("scrypt$") and "98765" not in stored


@pytest.mark.parametrize("bad", ["123", "123456789", "12a4", "", " 1234", "１２３４"])
def test_bad_pin_formats_refused(pins, bad):
    with pytest.raises(ValueError):
        pins.change("clinic", bad)
    assert not pins.verify("clinic", bad, 0.0)


def test_salted_hashes_differ():
    a, b = hash_pin("1234"), hash_pin("1234")
    assert a != b and check_hash("1234", a) and check_hash("1234", b)
    assert not check_hash("1235", a)
    assert not check_hash("1234", "garbage") and not check_hash("1234", "scrypt$x$y$z$00$00")


def test_lockout_after_five_and_expiry(pins):
    t = 100.0
    for i in range(4):
        assert not pins.verify("clinic", "0000", t + i)
        assert pins.locked_s("clinic", t + i) == 0
    assert not pins.verify("clinic", "0000", t + 4)
    assert pins.locked_s("clinic", t + 4) == pytest.approx(300)
    # locked: the right PIN fails too, and trying does not extend the lock
    assert not pins.verify("clinic", "1234", t + 100)
    assert pins.locked_s("clinic", t + 100) == pytest.approx(204)
    # the other role is not affected
    assert pins.verify("service", "7391", t + 100)
    # after the lock the count starts again
    assert pins.verify("clinic", "1234", t + 304.1)
    for i in range(4):
        assert not pins.verify("clinic", "0000", t + 305 + i)
    assert pins.verify("clinic", "1234", t + 310)          # a success resets the count
    assert not pins.verify("clinic", "0000", t + 311)
    assert pins.locked_s("clinic", t + 311) == 0


def test_unknown_role(pins):
    with pytest.raises(ValueError):
        pins.verify("admin", "1234", 0.0)
