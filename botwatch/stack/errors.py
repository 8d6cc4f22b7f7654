"""Errors of the local stack: each says what went wrong and what to do about it."""

from __future__ import annotations


class StackError(Exception):
    """A stack operation failed; ``fix`` tells the user what to do next."""

    def __init__(self, problem: str, fix: str, details: str = "") -> None:
        self.problem = problem
        self.fix = fix
        self.details = details
        super().__init__(self.render())

    def render(self) -> str:
        text = f"{self.problem}\n  fix: {self.fix}"
        if self.details:
            indented = "\n".join(f"    {line}" for line in self.details.rstrip().splitlines())
            text += f"\n  details:\n{indented}"
        return text
