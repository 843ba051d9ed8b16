"""ProxyPassReverse with a balancer URL compares the header with each member URL (§3.1)."""

from __future__ import annotations

from portico.config.model import ReverseRule, Source
from portico.proxy.reverse import ReverseMapper

SRC = Source("t.conf", 1)
MEMBERS = {"balancer://c1": ["http://10.0.0.1:8080", "http://10.0.0.2:8080/app"]}


def mapper(fake: str, real: str) -> ReverseMapper:
    return ReverseMapper([ReverseRule(fake, real, SRC)], [], [], MEMBERS)


def test_member_prefix_is_replaced() -> None:
    m = mapper("/shop", "balancer://c1")
    assert m.location("http://10.0.0.1:8080/cart", "http://front") == "http://front/shop/cart"
    assert m.location("http://10.0.0.2:8080/app/x", "http://front") == "http://front/shop/x"


def test_root_fake_does_not_double_the_slash() -> None:
    m = mapper("/", "balancer://c1/")
    assert m.location("http://10.0.0.1:8080/cart", "https://front") == "https://front/cart"


def test_url_part_must_follow_the_member() -> None:
    m = mapper("/s", "balancer://c1/store")
    assert m.location("http://10.0.0.1:8080/store/a", "http://f") == "http://f/s/a"
    assert m.location("http://10.0.0.1:8080/other/a", "http://f") == (
        "http://10.0.0.1:8080/other/a")


def test_other_hosts_are_left_alone() -> None:
    m = mapper("/shop", "balancer://c1")
    assert m.location("http://elsewhere/x", "http://front") == "http://elsewhere/x"
