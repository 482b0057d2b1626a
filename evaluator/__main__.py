"""`python -m evaluator` is the `ctxeval` command."""
from .cli import app

app(prog_name="ctxeval")
