"""The fixed payload encryption key every test process uses (set in tests/conftest.py).

Fixed, not random, so the saved replay histories (tests/fixtures/histories), recorded under
it, keep decrypting; a test key, never used anywhere else.
"""

from __future__ import annotations

TEST_KEY_ID = "test-2025-01"
TEST_KEYS = f"{TEST_KEY_ID}:9vEFLbUVdPBvcWbIOq5+cVIlj6CD138b0NMaYQNjBYQ="
# A second key, for rotation tests: what an operator would prepend when rotating.
NEXT_KEY_ID = "test-2025-02"
NEXT_KEY = f"{NEXT_KEY_ID}:anKoM9+c9r9fdhH9xWRaEhEMXhQyMZfl9K0MNbzuGYo="
