"""Status flag bits, letters and httpd's status strings (§6.3)."""

from __future__ import annotations

import pytest

from portico.state.flags import (
    CONFIG_LETTERS,
    LETTERS,
    Status,
    apply_letters,
    from_letters,
    is_usable,
    status_string,
    to_letters,
)


@pytest.mark.parametrize(("flags", "text"), [
    (Status.INIT, "Init Ok "),
    (Status.INIT | Status.DISABLED, "Init Dis "),
    (Status.INIT | Status.ERROR, "Init Err "),
    (Status.INIT | Status.STOPPED, "Init Stop "),
    (Status.INIT | Status.HCFAIL, "Init HcFl "),
    (Status.INIT | Status.DRAIN, "Init Drn Ok "),           # draining is still usable
    (Status.INIT | Status.IGNORE | Status.SPARE, "Init Ign Spar Ok "),
    (Status.INIT | Status.STANDBY, "Init Stby Ok "),
    (Status.INIT | Status.SHUTDOWN, "Init Shut "),
    (Status.INIT | Status.GENERIC, "Init Gen Ok "),
    (Status.FREE, "Free "),
    (Status(0), ""),                                        # not initialised: not usable
    # every name, in httpd's order
    (Status(0xFFF), "Init Ign Drn Gen Shut Dis Stop Err Stby Spar Free HcFl "),
])
def test_status_string(flags: Status, text: str) -> None:
    assert status_string(flags) == text


def test_usable_needs_init_and_none_of_dsecu() -> None:
    assert is_usable(Status.INIT)
    assert is_usable(Status.INIT | Status.DRAIN | Status.STANDBY | Status.SPARE)
    assert not is_usable(0)
    for letter in "DSECU":
        assert not is_usable(Status.INIT | LETTERS[letter]), letter


def test_letters_round_trip_and_case() -> None:
    assert from_letters("de") == Status.DISABLED | Status.ERROR
    assert to_letters(Status.INIT | Status.DISABLED | Status.HCFAIL) == "ODC"
    for letter, bit in LETTERS.items():
        assert to_letters(bit) == letter
        assert from_letters(letter) == bit
    assert len(set(LETTERS.values())) == 12
    assert set(CONFIG_LETTERS) == set("DSIRHENC")


def test_unknown_letter_is_an_error() -> None:
    with pytest.raises(ValueError, match="'X'"):
        from_letters("DX")


def test_apply_letters_sets_then_clears() -> None:
    flags = apply_letters(Status.INIT | Status.ERROR, set_letters="D", clear_letters="E")
    assert flags == Status.INIT | Status.DISABLED
    assert status_string(flags) == "Init Dis "
