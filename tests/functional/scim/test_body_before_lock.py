"""On SQLite, where writers take turns, a SCIM write reads its body before it takes the
writers' lock (the ``flock`` on ``<database>-writer.lock`` held with ``BEGIN IMMEDIATE``):
a client sending its body slowly, with no buffering proxy in front, must not hold every
other write of the store up."""

from __future__ import annotations

import io
import json
from typing import Any

from tests.functional.scim.conftest import SCIM_JSON, USER, ScimClient
from tests.writer_lock import held_by_someone


class _Body(io.BytesIO):
    """A request body that notes, at each read, whether the writers' lock was free."""

    def __init__(self, data: bytes, lock: str) -> None:
        super().__init__(data)
        self.lock = lock
        self.free_at_read: list[bool] = []

    def read(self, size: int | None = -1) -> bytes:
        self.free_at_read.append(not held_by_someone(self.lock))
        return super().read(size)

    def readinto(self, buffer: Any) -> int:
        self.free_at_read.append(not held_by_someone(self.lock))
        return super().readinto(buffer)


def test_a_write_reads_its_body_before_the_writers_lock(scim: ScimClient) -> None:
    db = scim.services.db
    assert db.dialect.name == "sqlite" and scim.services.engine.writers_take_turns
    lock = f"{db.url.database}-writer.lock"
    data = json.dumps({"schemas": [USER], "userName": "slow@example.com",
                       "emails": [{"value": "slow@example.com", "primary": True}]}).encode()
    body = _Body(data, lock)
    resp = scim.http.open("/scim/v2/Users", method="POST", input_stream=body,
                          headers={"Content-Type": SCIM_JSON, "Content-Length": str(len(data)),
                                   "Authorization": f"Bearer {scim.key}"})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert body.free_at_read and all(body.free_at_read), body.free_at_read
