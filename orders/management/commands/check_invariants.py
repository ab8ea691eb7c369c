"""Verify the invariants of SPEC §4 over the whole database; exit non-zero on any violation."""

from django.core.management.base import BaseCommand, CommandError

from orders.invariants import invariant_violations


class Command(BaseCommand):
    help = "Check every order, match and exchange placement against the invariants of SPEC §4."

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=100, help="Violations to list per check.")

    def handle(self, *args, limit, **options):
        violations = invariant_violations(limit=limit)
        for violation in violations:
            self.stdout.write(violation)
        if violations:
            raise CommandError(f"{len(violations)} invariant violations")
        self.stdout.write(self.style.SUCCESS("All invariants hold."))
