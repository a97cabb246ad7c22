"""Development tools: DynamoDB Local, tables and routes read from template.yaml, API
Gateway events, the stand-in NXCLOUD and the local stack. Used by the tests, `make local`
and the event generator; never deployed."""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LAYER_DIR = REPO_ROOT / "layers" / "shared"
# The layer's package, importable as it is on Lambda (where the layer is /opt/python).
if str(LAYER_DIR) not in sys.path:
    sys.path.insert(0, str(LAYER_DIR))
