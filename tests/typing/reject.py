"""mypy must reject this file, with exactly the errors marked ``# expect: <code>``."""

from __future__ import annotations

from cacheplug import cached


@cached
def add(a: int, b: str = "x") -> list[str]:
    return [b] * a


@cached(ttl=5)
async def fetch(user_id: int) -> tuple[int, str]:
    return user_id, "name"


add("one")  # expect: arg-type
add(1, 2)  # expect: arg-type
add(1, c="z")  # expect: call-arg
total: int = add(1)  # expect: assignment
add(1).upper()  # expect: attr-defined
add.invalidate("one")  # expect: arg-type
add.cache_key(1, b=2)  # expect: arg-type
pending = fetch("one")  # expect: arg-type


async def main() -> None:
    name: int = (await fetch(1))[1]  # expect: assignment
    value: tuple[int, str] = fetch(1)  # expect: assignment


class Repo:
    @cached
    @staticmethod
    def util(x: int) -> str:
        return str(x)

    @cached
    @classmethod
    def build(cls, n: int) -> list[int]:
        return [n]

    @cached(ttl=5)
    def load(self, user_id: int) -> dict[str, int]:
        return {"id": user_id}


repo = Repo()
Repo.util("x")  # expect: arg-type
Repo.build("x")  # expect: arg-type
repo.load("x")  # expect: arg-type
repo.load.invalidate("x")  # expect: arg-type
repo.load.refresh(1, 2)  # expect: call-arg
wrong: str = repo.load.refresh(1)  # expect: assignment
repo.load.cache_info().hits.upper()  # expect: attr-defined


@cached(warm="yes")  # expect: arg-type
def home() -> str:
    return "home"


cached(ttl=5, early_refresh="soon")  # expect: call-overload
