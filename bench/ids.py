"""Deterministic ids for seeded rows, so the wrk scripts can compute any row's uuid from
its index instead of loading pools of uuids. bench/scenario.lua mirrors these functions.

Every id is a valid v4-shaped uuid that matches the contract's path pattern:
``KKKKKKKK-0000-4000-8000-IIIIIIIIIIII`` with K the kind and I the index, in hex.
"""
from dataclasses import dataclass

ACCOUNT, PARTNER, USER, CERTIFICATION, ENROLLMENT = 1, 2, 3, 4, 5


def uid(kind: int, index: int) -> str:
    return f"{kind:08x}-0000-4000-8000-{index:012x}"


@dataclass(frozen=True)
class Layout:
    """Who is enrolled where. With the defaults: 60,000 users, 50 certifications,
    100,000 enrollments; certification 0 holds 50,000 of them (the big list), the other
    49 share the rest. Users ``big..users-1`` hold no enrollment at all: they are the
    pool the enroll scenario walks."""

    users: int = 60_000
    certifications: int = 50
    enrollments: int = 100_000
    partners: int = 20
    # One user in this many belongs to a partner (and must name it when enrolling).
    partner_every: int = 10
    # Of the small certifications' enrollments, this fraction is the progress pool; the
    # rest is the attempt pool. Both stay open (enrolled or in progress) in the seed.
    progress_share: float = 0.2

    @property
    def big(self) -> int:
        """Enrollments in certification 0, one per user 0..big-1."""
        return self.enrollments // 2

    @property
    def small(self) -> int:
        return self.enrollments - self.big

    @property
    def free_users(self) -> int:
        return self.users - self.big

    @property
    def progress_pool(self) -> int:
        return int(self.small * self.progress_share)

    @property
    def attempt_pool(self) -> int:
        return self.small - self.progress_pool

    @property
    def enroll_pool(self) -> int:
        """(small certification, free user) pairs nobody holds."""
        return self.free_users * (self.certifications - 1)

    def check(self) -> None:
        if self.certifications < 2:
            raise ValueError("need at least 2 certifications")
        if self.free_users < 1:
            raise ValueError("users must exceed enrollments/2: the surplus is the enroll pool")
        if self.small > _lcm(self.certifications - 1, self.big):
            raise ValueError("too many enrollments for these users and certifications")

    def partner_of(self, user: int) -> int | None:
        if user % self.partner_every:
            return None
        return (user // self.partner_every) % self.partners

    def small_enrollment(self, j: int) -> tuple[int, int]:
        """(certification, user) of small enrollment j; distinct for distinct j (by the
        Chinese remainder theorem, up to lcm(certifications-1, big))."""
        return 1 + j % (self.certifications - 1), j % self.big


def _lcm(a: int, b: int) -> int:
    from math import gcd

    return a * b // gcd(a, b)
