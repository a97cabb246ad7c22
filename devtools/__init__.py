"""Development tools: DynamoDB Local, tables and routes read from template.yaml, and
API Gateway events. Used by the tests, `make local` and the event generator; never
deployed."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
